"""The package as users get it: version and metadata, the installed wheel's layout (DARN_TEST_INSTALLED=1), the build
backend's settings, clear errors (bad DARN_LIBRARY, seeds, rowscale), type hints and `python -m darn`."""
import ctypes
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import typing

import pytest
import torch

import darn
from conftest import INSTALLED, PYROOT, REPO, subprocess_env

installed_only = pytest.mark.skipif(not INSTALLED, reason="tests the installed package (DARN_TEST_INSTALLED=1)")


def _backend_module():
    """python/backend/darn_build.py (the build backend; it needs setuptools)."""
    pytest.importorskip("setuptools")
    sys.path.insert(0, os.path.join(PYROOT, "backend"))
    try:
        return importlib.import_module("darn_build")
    finally:
        sys.path.pop(0)


def _import_darn(**env):
    e, cwd = subprocess_env(**env)
    return subprocess.run([sys.executable, "-c", "import darn; print(darn.library_path)"], cwd=cwd, env=e,
                          capture_output=True, text=True)


# ---- version: one source, the C library's ------------------------------------------------------------------------
def test_version_is_the_c_librarys():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        v = re.search(r"project\(darn VERSION (\d+\.\d+\.\d+)", f.read()).group(1)
    with open(os.path.join(REPO, "include", "darn", "darn.h")) as f:
        h = f.read()
    parts = (re.search(r"#define DARN_VERSION_%s (\d+)" % p, h).group(1) for p in ("MAJOR", "MINOR", "PATCH"))
    assert v == ".".join(parts)
    assert darn.__version__ == v
    assert darn.library_version == v  # the library in use comes from this tree too (bundled or build/)
    assert isinstance(darn.contract_version, int) and darn.contract_version == darn._lib.F["contract_version"]()


def test_read_version_refuses_disagreeing_sources(tmp_path):
    B = _backend_module()
    (tmp_path / "include" / "darn").mkdir(parents=True)
    (tmp_path / "CMakeLists.txt").write_text("project(darn VERSION 1.2.3 LANGUAGES C)\n")
    h = "#define DARN_VERSION_MAJOR 1\n#define DARN_VERSION_MINOR 2\n#define DARN_VERSION_PATCH %d\n"
    (tmp_path / "include" / "darn" / "darn.h").write_text(h % 3)
    assert B.read_version(str(tmp_path)) == "1.2.3"
    (tmp_path / "include" / "darn" / "darn.h").write_text(h % 4)
    with pytest.raises(B.BuildError, match="1.2.3.*1.2.4"):
        B.read_version(str(tmp_path))


# ---- the build backend's settings (no build here: tools/test-all's python stage builds the wheel) -----------------
def test_build_settings():
    B = _backend_module()
    assert B.gpu_choice({}) == "none" and B.gpu_choice({"DARN_GPU": "NVIDIA "}) == "nvidia"
    with pytest.raises(B.BuildError, match="DARN_GPU='cuda'"):
        B.gpu_choice({"DARN_GPU": "cuda"})
    extra = B.cmake_args({"CMAKE_ARGS": "-DCMAKE_CUDA_ARCHITECTURES='80;90' -DDARN_OPENMP=OFF"})
    assert extra == ["-DCMAKE_CUDA_ARCHITECTURES=80;90", "-DDARN_OPENMP=OFF"]
    for bad in ("-DDARN_GPU=amd", "-DBUILD_SHARED_LIBS:BOOL=OFF"):
        with pytest.raises(B.BuildError, match="CMAKE_ARGS sets"):
            B.cmake_args({"CMAKE_ARGS": bad})
    configure, build = B.cmake_commands("/src", "/b", "amd", extra, 3)
    assert configure[:5] == ["cmake", "-S", "/src", "-B", "/b"] and "-DDARN_GPU=amd" in configure
    assert configure.index("-DDARN_OPENMP=OFF") > configure.index("-DCMAKE_BUILD_TYPE=Release")  # CMAKE_ARGS win
    assert "-DDARN_BUILD_TESTS=OFF" in configure and build == ["cmake", "--build", "/b", "--target", "darn", "-j", "3"]
    assert B.build_dir_name("none", []) != B.build_dir_name("none", ["-DDARN_OPENMP=OFF"]) != B.build_dir_name(
        "amd", ["-DDARN_OPENMP=OFF"])
    assert B.source_dir({}, PYROOT) == os.path.realpath(REPO)
    with pytest.raises(B.BuildError, match="no darn source tree"):
        B.source_dir({"DARN_SOURCE_DIR": "/nonexistent"}, PYROOT)


def test_config_settings_become_the_environment(monkeypatch):
    B = _backend_module()
    monkeypatch.setenv("DARN_GPU", "amd")
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    with B._settings_in_env({"DARN_GPU": "nvidia", "CMAKE_ARGS": "-DX=1", "--build-option": "-q"}) as rest:
        assert os.environ["DARN_GPU"] == "nvidia" and os.environ["CMAKE_ARGS"] == "-DX=1"
        assert rest == {"--build-option": "-q"}  # setuptools sees only its own settings
    assert os.environ["DARN_GPU"] == "amd" and "CMAKE_ARGS" not in os.environ
    with pytest.raises(B.BuildError):
        with B._settings_in_env({"DARN_GPU": "tpu"}):
            pass
    assert os.environ["DARN_GPU"] == "amd"


# ---- the installed package -------------------------------------------------------------------------------------
@installed_only
def test_installed_package_layout_and_metadata():
    from importlib import metadata
    pkg = os.path.dirname(os.path.realpath(darn.__file__))
    assert not pkg.startswith(os.path.realpath(PYROOT) + os.sep)
    assert os.path.realpath(darn.library_path) == os.path.join(pkg, "lib", "libdarn.so.0"), darn.library_path
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    from darn import _build_info
    assert _build_info.version == darn.__version__ and _build_info.darn_gpu in ("none", "nvidia", "amd")
    dist = metadata.distribution("darn")
    md = dist.metadata
    assert md["Version"] == darn.__version__ and md["License"] == "BSD-3-Clause"
    assert md["Author"] == "the darn developers"
    assert "License :: OSI Approved :: BSD License" in md.get_all("Classifier")
    wheel = dist.read_text("WHEEL")
    plat = [line.split(": ", 1)[1] for line in wheel.splitlines() if line.startswith("Tag: ")]
    assert plat and all(t.startswith("py3-none-") and not t.endswith("-any") for t in plat), wheel
    assert "Root-Is-Purelib: false" in wheel
    assert any(str(f).endswith("LICENSE") for f in dist.files)
    # the torch requirement admits the torch in use (Debian's is 1.13.0a0+gitunknown, a pre-release to pip)
    try:
        from packaging.requirements import Requirement
    except ImportError:
        from pip._vendor.packaging.requirements import Requirement
    (req,) = [Requirement(r) for r in md.get_all("Requires-Dist") if r.startswith("torch")]
    assert req.specifier.contains(metadata.version("torch"), prereleases=None), (req, metadata.version("torch"))


def test_torch_requirement_admits_debians_torch():
    try:
        from packaging.requirements import Requirement
    except ImportError:
        pip = pytest.importorskip("pip._vendor.packaging.requirements")
        Requirement = pip.Requirement
    with open(os.path.join(PYROOT, "pyproject.toml")) as f:
        line = [v for v in f.read().splitlines() if v.startswith("dependencies")][0]
    spec = Requirement(line.split('"')[1]).specifier
    assert spec.contains("1.13.0a0+gitunknown") and spec.contains("2.11.0") and not spec.contains("1.12.1")


# ---- clear errors ------------------------------------------------------------------------------------------------
def test_darn_library_a_directory():
    lib_dir = os.path.dirname(darn.library_path)
    r = _import_darn(DARN_LIBRARY=lib_dir)
    assert r.returncode != 0 and "ImportError: darn: cannot load libdarn" in r.stderr
    assert "found a directory" in r.stderr and "libdarn.so" in r.stderr, r.stderr


def test_darn_library_not_darn():
    libm = ctypes.util.find_library("m")
    if not libm:
        pytest.skip("no libm to point at")
    r = _import_darn(DARN_LIBRARY=libm)
    assert r.returncode != 0 and "ImportError: darn: cannot load libdarn" in r.stderr
    assert "not libdarn" in r.stderr and "darn_version" in r.stderr and "AttributeError" not in r.stderr, r.stderr


def test_darn_library_not_a_library(tmp_path):
    f = tmp_path / "libdarn.so"
    f.write_text("not a library\n")
    r = _import_darn(DARN_LIBRARY=str(f))
    assert r.returncode != 0 and "ImportError: darn: cannot load libdarn" in r.stderr
    assert "the loader refused it" in r.stderr, r.stderr


def test_darn_library_too_old(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    src = tmp_path / "old.c"
    src.write_text("int darn_version(void) { return 1; }\nint darn_contract_version(void) { return 1; }\n")
    lib = tmp_path / "libdarn.so"
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    r = _import_darn(DARN_LIBRARY=str(lib))
    assert r.returncode != 0 and "found a libdarn without" in r.stderr and "darn_fwd" in r.stderr, r.stderr


def test_seed_and_offset_must_be_uint64():
    x, w = torch.randn(2, 8), torch.ones(8)
    for kw in ({"seed": -1}, {"seed": 2 ** 64}, {"seed": 2 ** 70}, {"seed": 1, "offset": -1},
               {"seed": 1, "offset": 2 ** 64}):
        with pytest.raises(ValueError, match=r"outside \[0, 2\*\*64\)"):
            darn.rms_norm_fn(x, w, None, dropout_p=0.1, **kw)
    with pytest.raises(TypeError, match="seed must be an integer"):
        darn.rms_norm_fn(x, w, None, dropout_p=0.1, seed=1.5)
    # the ends of the range are seeds like any other, and a seed beyond 2**63 is not a negative one
    a = darn.rms_norm_fn(x, w, None, dropout_p=0.5, seed=2 ** 64 - 1, offset=2 ** 64 - 4)
    b = darn.rms_norm_fn(x, w, None, dropout_p=0.5, seed=2 ** 64 - 1, offset=2 ** 64 - 4)
    c = darn.rms_norm_fn(x, w, None, dropout_p=0.5, seed=2 ** 63 - 1, offset=2 ** 64 - 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    darn.rms_norm_fn(x, w, None, dropout_p=0.5, seed=0, offset=0)


def test_rowscale_must_be_floating():
    x, w = torch.randn(2, 8), torch.ones(8)
    good = darn.rms_norm_fn(x, w, None, rowscale=torch.tensor([1.0, 2.0]))  # a cached plan for float32 rowscale
    assert torch.equal(darn.rms_norm_fn(x, w, None, rowscale=torch.tensor([1.0, 2.0], dtype=torch.float64)), good)
    for rs in (torch.tensor([1, 2]), torch.tensor([True, False]), torch.tensor([1, 2], dtype=torch.int32)):
        with pytest.raises(TypeError, match="rowscale has dtype .* floating-point"):
            darn.rms_norm_fn(x, w, None, rowscale=rs)
    with pytest.raises(TypeError, match="rowscale must be a torch.Tensor"):
        darn.rms_norm_fn(x, w, None, rowscale=[1.0, 2.0])


# ---- type hints ----------------------------------------------------------------------------------------------------
def test_public_functions_are_annotated():
    for fn in (darn.layer_norm_fn, darn.rms_norm_fn, darn.gpu_available):
        hints = typing.get_type_hints(fn)
        params = [p for p in inspect.signature(fn).parameters]
        assert "return" in hints and all(p in hints for p in params), (fn.__name__, set(params) - set(hints))
    for cls in (darn.RMSNorm, darn.LayerNorm, darn.DropoutAddRMSNorm, darn.DropoutAddLayerNorm):
        for meth in (cls.__init__, cls.forward):
            hints = typing.get_type_hints(meth)
            params = [p for p in inspect.signature(meth).parameters if p != "self"]
            assert "return" in hints and all(p in hints for p in params), (cls.__name__, meth.__name__)
    assert os.path.exists(os.path.join(os.path.dirname(darn.__file__), "py.typed"))


# ---- python -m darn ------------------------------------------------------------------------------------------------
def test_python_m_darn_reports_and_checks_the_cpu():
    env, cwd = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "darn"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "darn %s" % darn.__version__ in out
    assert "numerics contract %d" % darn.contract_version in out
    assert darn.library_path in out and "torch %s" % torch.__version__ in out
    assert "backends: cpu available; gpu " in out and "devices (torch): " in out
    assert "self-check cpu: ok" in out and out.rstrip().endswith("result: ok")
    r = subprocess.run([sys.executable, "-m", "darn", "--json"], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] is True and rep["checks"]["cpu"]["ok"] is True and rep["checks"]["cpu"]["cases"] >= 3
    assert rep["contract_version"] == darn.contract_version and rep["library_path"] == darn.library_path
    if INSTALLED:
        assert rep["package_build"]["version"] == darn.__version__ and rep["library_is_bundled"]


def test_self_check_catches_differences(monkeypatch):
    """The CPU check compares two runs bit for bit: a direct run at another offset must fail it."""
    from darn import _diagnose as D
    direct = D._direct_run

    def shifted(case, t):
        monkeypatch.setattr(D, "OFFSET", D.OFFSET + 4)
        try:
            return direct(case, t)
        finally:
            monkeypatch.setattr(D, "OFFSET", D.OFFSET - 4)
    monkeypatch.setattr(D, "_direct_run", shifted)
    res = D.check_cpu()
    assert not res["ok"] and any("package vs direct darn calls" in f and "mask" in f for f in res["failures"])
    monkeypatch.setattr(D, "_direct_run", direct)
    fp64 = D._fp64_forward
    monkeypatch.setattr(D, "_fp64_forward", lambda c, t, m: tuple(v * 1.01 for v in fp64(c, t, m)))
    assert any("vs fp64" in f for f in D.check_cpu()["failures"])
    rep = D.report(check=False)
    assert rep["checks"] == {} and rep["ok"] and rep["backends"]["cpu"] == "available"


def test_python_m_darn_without_a_library():
    env, cwd = subprocess_env(DARN_LIBRARY="/nonexistent/libdarn.so")
    r = subprocess.run([sys.executable, "-m", "darn"], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "cannot load libdarn" in r.stderr and "/nonexistent/libdarn.so" in r.stderr
