"""setuptools glue of the darn package (the metadata is in pyproject.toml; the build backend in backend/).

- version: the C library's (CMakeLists.txt / include/darn/darn.h of the source tree), one source for both;
- build_py: builds libdarn with CMake (DARN_GPU = none | nvidia | amd, CMAKE_ARGS passed through) and puts it into
  the package as darn/lib/libdarn.so.0, with darn/_build_info.py (version, DARN_GPU, CMAKE_ARGS);
- bdist_wheel: tagged py3-none-<platform>: the package is pure Python over ctypes (any CPython 3), but holds a
  native library;
- sdist: carries the C sources (csrc/), so that a wheel can be built from it.
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "backend"))

import darn_build as B  # noqa: E402
from setuptools import Command, setup  # noqa: E402
from setuptools.command.build_py import build_py as _build_py  # noqa: E402
from setuptools.command.sdist import sdist as _sdist  # noqa: E402
from setuptools.dist import Distribution  # noqa: E402

try:
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel  # setuptools >= 70.1
except ImportError:
    try:
        from wheel.bdist_wheel import bdist_wheel as _bdist_wheel
    except ImportError:
        _bdist_wheel = None

SRC = B.source_dir()
VERSION = B.read_version(SRC)
C_TREE = ("CMakeLists.txt", "LICENSE", "cmake", "include", "src", "hip")  # what CMake reads for libdarn alone


class build_py(_build_py):
    """The Python files, then libdarn (CMake) and _build_info.py into the package."""

    def run(self):
        pkg = os.path.join(HERE, "darn") if getattr(self, "editable_mode", False) else os.path.join(
            self.build_lib, "darn")
        if not getattr(self, "editable_mode", False):
            shutil.rmtree(pkg, ignore_errors=True)  # nothing stale from an earlier build goes into the wheel
        super().run()
        gpu, extra = B.gpu_choice(), B.cmake_args()
        cmake = B.find_cmake()
        if cmake is None:
            raise B.BuildError("darn: building libdarn needs CMake >= %d.%d on PATH (Debian: apt-get install cmake, "
                               "or tools/install-deps none)" % B.CMAKE_MIN)
        bdir = os.path.join(os.path.abspath(self.get_finalized_command("build").build_temp),
                            B.build_dir_name(gpu, extra))
        jobs = None if os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") else (os.cpu_count() or 1)
        for cmd in B.cmake_commands(SRC, bdir, gpu, extra, jobs, cmake):
            self.announce("darn: " + " ".join(cmd), level=2)
            subprocess.run(cmd, check=True)
        lib = B.find_library(bdir)
        os.makedirs(os.path.join(pkg, "lib"), exist_ok=True)
        shutil.copyfile(lib, os.path.join(pkg, "lib", "libdarn.so.0"))  # the SONAME; a wheel holds no links
        with open(os.path.join(pkg, "_build_info.py"), "w") as f:
            f.write('"""Written by the package build (python/setup.py): how the bundled libdarn was built."""\n'
                    "version = %r\ndarn_gpu = %r\ncmake_args = %r\n" % (VERSION, gpu, " ".join(extra)))


cmdclass = {"build_py": build_py}

if _bdist_wheel is not None:
    class bdist_wheel(_bdist_wheel):
        """py3-none-<platform>: ctypes code for any CPython 3 over a native libdarn for this platform."""

        def get_tag(self):
            return ("py3", "none") + tuple(super().get_tag()[2:])

    cmdclass["bdist_wheel"] = bdist_wheel
else:
    class bdist_wheel(Command):
        """Stands in for a missing bdist_wheel with a message that says what to install."""
        user_options = []

        def initialize_options(self):
            pass

        def finalize_options(self):
            pass

        def run(self):
            raise B.BuildError("darn: building a wheel needs the `wheel` package with this setuptools (< 70.1): "
                               "Debian: apt-get install python3-wheel (tools/install-deps python)")

    cmdclass["bdist_wheel"] = bdist_wheel


class sdist(_sdist):
    """The package plus the C sources of libdarn under csrc/ (backend/darn_build.py source_dir finds them)."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if os.path.abspath(SRC) == os.path.join(HERE, "csrc"):
            return  # an sdist of an sdist: csrc/ came in with the files
        for item in C_TREE:
            src, dst = os.path.join(SRC, item), os.path.join(base_dir, "csrc", item)
            if os.path.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif os.path.exists(src):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)


cmdclass["sdist"] = sdist


class BinaryDistribution(Distribution):
    """Not pure: the build goes to a platform build/lib.*, the wheel installs into platlib (root_is_pure false)."""

    def has_ext_modules(self):
        return True


setup(version=VERSION, cmdclass=cmdclass, distclass=BinaryDistribution)
