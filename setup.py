"""Build the optional C++ extension ``engine._native``.

Everything else is declared in pyproject.toml. The extension is optional: without a
working C++ compiler the package still installs and runs on the Numba and NumPy
backends, with a warning. ``ENGINE_STRICT_BUILD=1`` turns a failed build into a failed
install (CI sets it). ``ENGINE_NATIVE_ARCH`` (e.g. ``native``) opts into ``-march``;
the default build is portable. Never ``-ffast-math``: results must be exact.
"""
import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

try:
    from pybind11.setup_helpers import Pybind11Extension
except ImportError:  # pragma: no cover - pybind11 is a build requirement
    Pybind11Extension = None

STRICT = os.environ.get("ENGINE_STRICT_BUILD", "") not in ("", "0")


def _openmp_flags(compiler):
    """Return (compile, link) flags for OpenMP when the compiler supports it."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_probe.cpp")
        with open(src, "w") as fh:
            fh.write("#include <omp.h>\nint main(){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objs, os.path.join(tmp, "omp_probe"), extra_postargs=["-fopenmp"])
        except Exception:
            return [], []
    return ["-fopenmp"], ["-fopenmp"]


class OptionalBuildExt(build_ext):
    def build_extensions(self):
        cflags, lflags = _openmp_flags(self.compiler)
        arch = os.environ.get("ENGINE_NATIVE_ARCH")
        for ext in self.extensions:
            ext.extra_compile_args += ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fno-math-errno"] + cflags
            if arch:
                ext.extra_compile_args.append(f"-march={arch}")
            ext.extra_link_args += lflags
            ext.define_macros.append(("ENGINE_HAS_OPENMP", "1" if cflags else "0"))
        if not cflags:
            self.warn("OpenMP not available: the native backend will run single-threaded")
        try:
            super().build_extensions()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            if STRICT:
                raise
            sys.stderr.write(
                f"WARNING: building engine._native failed ({exc}); the package will use the "
                "numba/reference backends. Set ENGINE_STRICT_BUILD=1 to make this an error.\n"
            )
            self.extensions = []  # nothing to copy or package

    def copy_extensions_to_source(self):
        if self.extensions:
            super().copy_extensions_to_source()

    def get_outputs(self):
        return super().get_outputs() if self.extensions else []


ext_modules = []
if Pybind11Extension is not None:
    ext_modules.append(
        Pybind11Extension(
            "engine._native",
            ["python/bindings.cpp"],
            include_dirs=["csrc"],
            # the kernels live in headers: a change there must rebuild the extension
            depends=sorted(glob.glob(os.path.join("csrc", "engine", "*.h"))),
            cxx_std=17,
        )
    )
elif STRICT:
    raise RuntimeError("pybind11 is required to build engine._native (ENGINE_STRICT_BUILD=1)")

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
