"""Synthetic training data: an offscreen renderer (:mod:`.renderer`) and random MANO hands
(:mod:`.hands`) rendered into common samples."""
