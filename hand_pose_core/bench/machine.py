"""Machine description for benchmark reports: CPU model and cores, GPU, library versions, load."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """SIMD flags of the CPU (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_description() -> str:
    """'NVIDIA H100 ... (sm_90), CUDA 12.x' or 'none' (via torch; never raises)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "none"
        name = torch.cuda.get_device_name(0)
        cc = torch.cuda.get_device_capability(0)
        return f"{name} (sm_{cc[0]}{cc[1]}), CUDA {torch.version.cuda}"
    except Exception as exc:  # a broken driver must not stop a CPU benchmark
        return f"unknown ({type(exc).__name__})"


LIBRARIES = ("torch", "onnxruntime", "onnx", "numpy", "opencv-python-headless", "tensorrt",
             "openvino", "ai-edge-litert", "threadpoolctl")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide the numbers (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def machine_info() -> dict:
    simd = sorted(f for f in cpu_flags() if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "fma"))
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "simd": simd, "gpu": gpu_description(),
        "os": f"{platform.system()} {platform.release()}", "versions": library_versions(),
        "load_average": load_average(), "argv": list(sys.argv),
    }


def describe(info: dict) -> str:
    """One markdown paragraph describing the machine."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    load = info.get("load_average")
    load_txt = f"; load average at start {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (1/5/15 min)" if load else ""
    return (f"Machine: {info['cpu']}, {info['cores']} logical cores ({' '.join(info['simd']) or 'no AVX2'}), "
            f"GPU: {info['gpu']}, {info['os']}{load_txt}. Versions: {versions}.")
