"""polyfuse: a graph-level deep-learning compiler for phones and edge devices.

Installs the Python package (src/polyfuse), the native runtime module polyfuse._runtime
(pybind11), and the hand-written kernels and code templates as package data (polyfuse/_data),
so an installed polyfuse can generate and build code without the source tree.
"""
import shutil
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA_DIRS = ("kernels", "codegen_templates")


class build_py_with_data(build_py):
    """Copy kernels/ and codegen_templates/ into polyfuse/_data of the built package."""

    def run(self):
        super().run()
        for d in DATA_DIRS:
            dest = Path(self.build_lib) / "polyfuse" / "_data" / d
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(HERE / d, dest, ignore=shutil.ignore_patterns("tests", "*.o", "*.so"))


setup(
    name="polyfuse",
    version="0.1.0",
    description="Graph-level deep-learning compiler: ONNX to fused native code for phones and edge devices",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"polyfuse.cost": ["profiles/*.json"]},
    ext_modules=[Pybind11Extension("polyfuse._runtime", ["src/polyfuse/runtime/_runtime.cpp"], cxx_std=17,
                                   libraries=["dl"])],
    cmdclass={"build_py": build_py_with_data},
    # ml_dtypes 0.7: Cast between narrow types matches ONNX's reference only from it (with 0.6,
    # 12 of tests/test_narrow_*.py fail; 0.6 has no E8M0 -> E4M3FN cast and saturates float8 ->
    # int8 differently).
    install_requires=["numpy>=1.24", "onnx>=1.14", "ml_dtypes>=0.7", "onnxruntime>=1.16", "sympy>=1.12",
                      "networkx>=3.0", "jinja2>=3.1", "pybind11>=2.10"],
    # polyfuse nas: optuna's NSGA-II sampler (multi-objective search with constraints, kept
    # up to date by its authors) and matplotlib for pareto.png; Ray runs quality functions on a cluster
    extras_require={"nas": ["optuna>=5.0", "matplotlib>=3.5"], "ray": ["ray>=2.9"]},
    entry_points={"console_scripts": ["polyfuse = polyfuse.cli:console"]},
)
