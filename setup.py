from setuptools import find_packages, setup

setup(
    name="lrpnet",
    version="0.1.0",
    description="Explaining recurrent neural networks with relevance propagation: "
                "a from-scratch reproduction of 'Designing Recurrent Neural Networks for Explainability'",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["lrpnet", "lrpnet.*", "kernels", "kernels.*"]),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "scipy>=1.10",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "threadpoolctl>=3",                     # BLAS threads of the sweep's workers (lrpnet.threads)
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "pytest-timeout>=2", "torch==2.13.0",
                 "dask[distributed]>=2024.1"],
        "gpu": ["cupy-cuda13x>=13"],            # CUDA 13 drivers (backend.gpu_status() says which)
        "gpu-cuda12": ["cupy-cuda12x>=13"],     # drivers that support only CUDA 12
        "dist": ["dask[distributed]>=2024.1"],
        "torch": ["torch==2.13.0"],
    },
)
