"""Offline builder of CRSLab's ReDial dataset and the C2-CRS side files (reviews, mention spans).

Public API::

    build_redial(raw, data_root, force=False, threshold=90.0) -> stats dict
    DataBuildError            every input fault, with file and record in the message
    tokenize(text) -> tokens  the CRSLab-compatible offline tokenizer
"""
from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.builder.redial import build_redial, dataset_dir, kgsf_dir, mentions_file
from crslab_c2crs.data.builder.reviews import FORMAT_VERSION as REVIEWS_FORMAT_VERSION
from crslab_c2crs.data.builder.reviews import REVIEWS_FILE
from crslab_c2crs.data.builder.tokenize import tokenize

__all__ = ["DataBuildError", "build_redial", "dataset_dir", "kgsf_dir", "mentions_file", "REVIEWS_FILE",
           "REVIEWS_FORMAT_VERSION", "tokenize"]
