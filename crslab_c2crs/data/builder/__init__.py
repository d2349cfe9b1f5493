"""Offline builder of CRSLab's ReDial dataset and the C2-CRS side files (reviews, mention spans).

Public API::

    build_redial(raw, data_root, force=False, threshold=90.0) -> stats dict
    DataBuildError            every input fault, with file and record in the message

Where the outputs go is :mod:`crslab_c2crs.data.layout`; the tokenizer and entity linker that the builder shares
with the chat are :mod:`crslab_c2crs.data.tokenize` and :mod:`crslab_c2crs.data.linking`.
"""
from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.builder.redial import build_redial
from crslab_c2crs.data.builder.reviews import FORMAT_VERSION as REVIEWS_FORMAT_VERSION

__all__ = ["DataBuildError", "build_redial", "REVIEWS_FORMAT_VERSION"]
