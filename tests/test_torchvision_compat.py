import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: the import state of torchvision is process-wide.
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_open_clip_imports_and_builds_a_model() -> None:
    result = _run(
        "from models.torchvision_compat import import_open_clip\n"
        "open_clip = import_open_clip()\n"
        "print(sorted(open_clip.list_models())[:1])\n"
        "import torchvision; print(torchvision.__version__)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "[" in result.stdout


def test_import_is_idempotent() -> None:
    result = _run(
        "from models.torchvision_compat import import_torchvision\n"
        "a = import_torchvision(); b = import_torchvision(); assert a is b\n"
    )
    assert result.returncode == 0, result.stderr


def test_unrelated_import_errors_are_not_swallowed() -> None:
    result = _run(
        "import sys\n"
        "class Broken:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torchvision': raise RuntimeError('disk on fire')\n"
        "sys.meta_path.insert(0, Broken())\n"
        "from models.torchvision_compat import import_torchvision\n"
        "import_torchvision()\n"
    )
    assert result.returncode != 0
    assert "disk on fire" in result.stderr
