"""The darn package's build backend: setuptools.build_meta, plus libdarn built with CMake inside the wheel build.

pyproject.toml names this module (build-backend = "darn_build", backend-path = ["backend"]). Every hook is
setuptools.build_meta's, with two additions:
- the config settings DARN_GPU and CMAKE_ARGS (`pip install --config-settings DARN_GPU=nvidia ./python`) become
  the environment variables of the same names for the build (a config setting wins over the environment);
  setup.py's build_py runs CMake with them (see cmake_commands);
- get_requires_for_build_* asks for the `cmake` package only when no cmake >= 3.20 is on PATH (a build with
  isolation on a machine without CMake).
The helpers below are also what setup.py uses (version, source tree, CMake command lines), and tests call them.
"""
import hashlib
import os
import re
import shlex
import shutil
import subprocess

from setuptools import build_meta as _orig

GPU_CHOICES = ("none", "nvidia", "amd")
CONFIG_KEYS = ("DARN_GPU", "CMAKE_ARGS")
CMAKE_MIN = (3, 20)
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # python/ (or the unpacked sdist)


class BuildError(Exception):
    """A build setting or the source tree is not usable; the message says what to change."""


# ---- the C library's source tree and version -------------------------------------------------------------------
def source_dir(env=None, here=HERE):
    """The darn source tree to build libdarn from: $DARN_SOURCE_DIR, else csrc/ beside setup.py (an sdist), else
    the repository around python/ (a checkout)."""
    env = os.environ if env is None else env
    cands = [env["DARN_SOURCE_DIR"]] if env.get("DARN_SOURCE_DIR") else [os.path.join(here, "csrc"),
                                                                        os.path.dirname(here)]
    for d in cands:
        if _is_darn_tree(d):
            return os.path.abspath(d)
    raise BuildError("darn: no darn source tree (CMakeLists.txt with project(darn ...), include/darn/darn.h) at %s; "
                     "build the package from a darn checkout (pip install ./python) or an sdist of it, or set "
                     "DARN_SOURCE_DIR" % " or ".join(cands))


def _is_darn_tree(d):
    try:
        with open(os.path.join(d, "CMakeLists.txt")) as f:
            return re.search(r"^\s*project\(\s*darn\b", f.read(), re.M) is not None and os.path.exists(
                os.path.join(d, "include", "darn", "darn.h"))
    except OSError:
        return False


def read_version(src):
    """The C library's version: project(darn VERSION x.y.z) in CMakeLists.txt, which must equal
    DARN_VERSION_MAJOR/MINOR/PATCH in include/darn/darn.h (what darn_version_string() reports)."""
    with open(os.path.join(src, "CMakeLists.txt")) as f:
        m = re.search(r"^\s*project\(\s*darn\s+VERSION\s+(\d+)\.(\d+)\.(\d+)\b", f.read(), re.M)
    if not m:
        raise BuildError("darn: no `project(darn VERSION x.y.z` in %s/CMakeLists.txt" % src)
    cm = tuple(int(v) for v in m.groups())
    with open(os.path.join(src, "include", "darn", "darn.h")) as f:
        h = f.read()
    hv = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        mh = re.search(r"^#define\s+DARN_VERSION_%s\s+(\d+)\s*$" % part, h, re.M)
        if not mh:
            raise BuildError("darn: no DARN_VERSION_%s in %s/include/darn/darn.h" % (part, src))
        hv.append(int(mh.group(1)))
    if tuple(hv) != cm:
        raise BuildError("darn: CMakeLists.txt says version %s but include/darn/darn.h says %s: make them agree"
                         % (".".join(map(str, cm)), ".".join(map(str, hv))))
    return ".".join(map(str, cm))


# ---- build settings ---------------------------------------------------------------------------------------------
def gpu_choice(env=None):
    """DARN_GPU from the environment (config settings arrive there too): none (default), nvidia or amd."""
    env = os.environ if env is None else env
    gpu = (env.get("DARN_GPU") or "none").strip().lower()
    if gpu not in GPU_CHOICES:
        raise BuildError("darn: DARN_GPU=%r is not one of %s" % (env.get("DARN_GPU"), ", ".join(GPU_CHOICES)))
    return gpu


def cmake_args(env=None):
    """$CMAKE_ARGS split like a shell does; DARN_GPU and BUILD_SHARED_LIBS are the build's, not CMAKE_ARGS'."""
    env = os.environ if env is None else env
    args = shlex.split(env.get("CMAKE_ARGS") or "")
    for a in args:
        m = re.match(r"-D\s*(DARN_GPU|BUILD_SHARED_LIBS)(:\w+)?=", a)
        if m:
            raise BuildError("darn: CMAKE_ARGS sets %s; %s" % (m.group(1), "set DARN_GPU (environment variable or "
                             "config setting) instead" if m.group(1) == "DARN_GPU" else
                             "the package needs the shared library"))
    return args


def cmake_commands(src, build_dir, gpu, extra, jobs=None, cmake="cmake"):
    """The configure and build command lines for libdarn alone (no tests, benchmarks or demo): Release unless
    CMAKE_ARGS (extra) says otherwise."""
    configure = [cmake, "-S", src, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DDARN_BUILD_TESTS=OFF",
                 "-DDARN_BUILD_BENCH=OFF"] + list(extra) + ["-DDARN_GPU=" + gpu, "-DBUILD_SHARED_LIBS=ON"]
    build = [cmake, "--build", build_dir, "--target", "darn"]
    if jobs:
        build += ["-j", str(jobs)]
    return configure, build


def build_dir_name(gpu, extra):
    """One CMake build folder per (DARN_GPU, CMAKE_ARGS): a rebuild with the same settings is incremental, and
    settings never leak from one configuration into another through CMake's cache."""
    return "cmake-%s-%s" % (gpu, hashlib.sha256("\0".join(extra).encode()).hexdigest()[:10])


def find_cmake():
    """A cmake >= 3.20 on PATH (its path), else None."""
    exe = shutil.which("cmake")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"(\d+)\.(\d+)", out)
    return exe if m and tuple(int(v) for v in m.groups()) >= CMAKE_MIN else None


def find_library(build_dir):
    """The real file of the shared libdarn a build produced (libdarn.so is a link to libdarn.so.X.Y.Z)."""
    for root, _, files in os.walk(build_dir):
        if "libdarn.so" in files and "CMakeFiles" not in root:
            return os.path.realpath(os.path.join(root, "libdarn.so"))
    raise BuildError("darn: the CMake build in %s produced no libdarn.so" % build_dir)


# ---- PEP 517 hooks ----------------------------------------------------------------------------------------------
class _settings_in_env:
    """Puts the config settings DARN_GPU / CMAKE_ARGS into os.environ for one hook (and takes them out of what
    setuptools sees)."""

    def __init__(self, config_settings):
        cfg = dict(config_settings or {})
        self.ours = {k: cfg.pop(k) for k in CONFIG_KEYS if k in cfg}
        self.rest = cfg or None

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.ours}
        for k, v in self.ours.items():
            os.environ[k] = " ".join(v) if isinstance(v, list) else str(v)
        try:
            gpu_choice()  # a bad value fails here, before any build work
            cmake_args()
        except BuildError:
            self.__exit__()
            raise
        return self.rest

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with _settings_in_env(config_settings) as rest:
        return _orig.build_wheel(wheel_directory, rest, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    with _settings_in_env(config_settings) as rest:
        return _orig.build_sdist(sdist_directory, rest)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    with _settings_in_env(config_settings) as rest:
        return _orig.prepare_metadata_for_build_wheel(metadata_directory, rest)


def _with_cmake(requires):
    return requires + (["cmake>=%d.%d" % CMAKE_MIN] if find_cmake() is None else [])


def get_requires_for_build_wheel(config_settings=None):
    with _settings_in_env(config_settings) as rest:
        return _with_cmake(list(_orig.get_requires_for_build_wheel(rest)))


def get_requires_for_build_sdist(config_settings=None):
    with _settings_in_env(config_settings) as rest:
        return list(_orig.get_requires_for_build_sdist(rest))


if hasattr(_orig, "build_editable"):  # PEP 660 (setuptools >= 64)
    def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
        with _settings_in_env(config_settings) as rest:
            return _orig.build_editable(wheel_directory, rest, metadata_directory)

    def get_requires_for_build_editable(config_settings=None):
        with _settings_in_env(config_settings) as rest:
            return _with_cmake(list(_orig.get_requires_for_build_editable(rest)))

    def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
        with _settings_in_env(config_settings) as rest:
            return _orig.prepare_metadata_for_build_editable(metadata_directory, rest)
