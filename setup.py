"""crslab-c2crs: C2-CRS (WSDM 2022) as a plugin for CRSLab 0.1.2.

CRSLab itself is NOT listed in install_requires: its 0.1.2 pins (numpy~=1.19.4, transformers~=4.4, pkuseg...)
cannot be built on Python 3.11. Install it without its pins (``pip install --no-deps crslab==0.1.2``), as the
Makefile does; the libraries CRSLab really imports are listed below.
"""
from setuptools import find_packages, setup

setup(
    name="crslab-c2crs",
    version="0.1.0",
    description="C2-CRS conversational recommender for CRSLab 0.1.2, offline, on today's Python",
    python_requires=">=3.10",  # zip(strict=True)
    packages=find_packages(include=["crslab_c2crs", "crslab_c2crs.*", "bench", "bench.*"]),
    install_requires=[
        "torch>=2.1",
        "torch-geometric==2.8.1",
        "numpy",
        "pyyaml",
        "loguru",
        "tqdm",
        "nltk",
        "rapidfuzz",
        "jieba",  # Chinese segmentation for TG-ReDial (CRSLab's pkuseg does not build on Python 3.11)
        "fuzzywuzzy",
        "python-Levenshtein",
        "scikit-learn",
        "scipy",  # bench.significance: paired permutation tests
        "cogapp",  # bench.recommendation: the README's and docs' result tables, generated from the records
        "wordfreq",  # the chat linker: which titles are made of everyday words
        "tensorboard",
        "fasttext-numpy2",
        "transformers<4.50",
        "matplotlib",
        "gensim>=4.4",  # the data builder's word2vec vectors (CRSLab's word2vec_redial.npy for KGSF and KBRD)
        "flask",  # the web chat (crslab_c2crs.interactive.web)
    ],
    package_data={"crslab_c2crs.interactive": ["web.html"]},
    # selenium drives the system's Chromium (Debian's chromium and chromium-driver) in the web chat's browser test
    extras_require={"test": ["pytest", "ruff", "selenium"]},
)
