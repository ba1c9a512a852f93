"""The package is installable the ROS way (ament_python) and hand_pose_core never needs rclpy."""
import ast
import pkgutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import hand_pose_core

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format3_ament_python_with_runtime_deps():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "hand_pose_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    for needed in ("rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "std_msgs",
                   "shape_msgs", "diagnostic_msgs", "cv_bridge", "python3-numpy", "python3-opencv"):
        assert needed in deps, f"package.xml lacks exec_depend {needed}"
    assert root.findtext("license") == "Apache-2.0"


def test_setup_installs_marker_launch_config_and_console_scripts():
    tree = ast.parse((ROOT / "setup.py").read_text())
    text = (ROOT / "setup.py").read_text()
    assert "share/ament_index/resource_index/packages" in text
    assert (ROOT / "resource" / "hand_pose_ros").is_file()
    for folder in ("launch", "config"):
        assert f'share/{{PACKAGE}}/{folder}' in text, f"{folder}/ is not installed to share/"
    scripts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and " = " in n.value]
    targets = dict(s.split(" = ") for s in scripts)
    for name in ("hand-pose", "hand_pose_node", "hand_pose_replay"):
        assert name in targets, f"console script {name} missing"
    for name, target in targets.items():
        module, func = target.split(":")
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{name} points at missing module {module}"
        source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
        assert f"def {func}(" in source, f"{name}: {module} has no function {func}"


def test_every_core_module_imports_without_rclpy():
    """Import every hand_pose_core module in a fresh interpreter where rclpy cannot be imported."""
    modules = [m.name for m in pkgutil.walk_packages(hand_pose_core.__path__, "hand_pose_core.")]
    assert len(modules) > 5
    code = (
        "import sys, importlib\n"
        "for blocked in ('rclpy', 'sensor_msgs', 'std_msgs'):\n"
        "    sys.modules[blocked] = None\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "import hand_pose_core\n"
        "for name in hand_pose_core.__all__:\n"
        "    getattr(hand_pose_core, name)\n"
        "assert 'rclpy' not in [k for k, v in sys.modules.items() if v is not None]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_readme_consumer_example_reads_the_published_layout():
    """The README's few-line consumer must decode exactly what the node publishes."""
    import re

    import numpy as np

    from hand_pose_ros.hand_msgs import JOINTS_DTYPE

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import numpy as np\nfrom sensor_msgs.msg import PointCloud2\n.*?)```", readme, re.S)
    assert block, "README lost its /hand/joints3d consumer example"
    namespace: dict = {}
    exec(block.group(1), namespace)  # defines the dtype and the callback, runs nothing else
    readme_dtype = next(v for v in namespace.values() if isinstance(v, np.dtype))
    assert readme_dtype == JOINTS_DTYPE


def test_readme_mano_example_runs(tmp_path, monkeypatch):
    """The README's MANO snippet runs as written (synthetic model) and writes its mesh."""
    import re

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import torch\nfrom hand_pose_core.mano import .*?)```", readme, re.S)
    assert block, "README lost its MANO example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(block.group(1), namespace)
    assert tuple(namespace["verts"].shape) == (1, 778, 3) and tuple(namespace["joints"].shape) == (1, 21, 3)
    assert (tmp_path / "hand.obj").stat().st_size > 10_000
