"""C2-CRS model package: configuration, encoders, contrastive objectives, recommender, decoder and model."""
from crslab_c2crs.model.c2crs.config import C2CRSConfig
from crslab_c2crs.model.c2crs.model import C2CRSModel

__all__ = ["C2CRSConfig", "C2CRSModel"]
