"""crslab-c2crs: the C2-CRS conversational recommender (WSDM 2022) as a CRSLab 0.1.2 plugin.

Importing this package patches CRSLab for today's Python and libraries and points CRSLab's data and save paths at
the project data root (:mod:`crslab_c2crs.compat`), and imports the plugin's modules, whose ``@register_*``
decorators (:mod:`crslab_c2crs.registry`) put their datasets, dataloaders, models, systems and evaluator into
CRSLab's registries.
"""
import importlib

from crslab_c2crs import compat
from crslab_c2crs.compat import use_fast_rgcn_in_baselines
from crslab_c2crs.paths import resolve_data_root

__version__ = "0.1.0"

compat.apply()
compat.relocate(resolve_data_root())

# Each of these modules registers its classes into CRSLab's tables when imported.
_PLUGIN_MODULES = (
    "crslab_c2crs.data.dataset",
    "crslab_c2crs.data.tgredial",
    "crslab_c2crs.data.dataloader",
    "crslab_c2crs.data.baselines",
    "crslab_c2crs.model.c2crs.model",
    "crslab_c2crs.system.c2crs",
    "crslab_c2crs.system.baselines",
    "crslab_c2crs.data.shortcuts",
    "crslab_c2crs.model.shortcuts",
    "crslab_c2crs.system.shortcuts",
)
for _name in _PLUGIN_MODULES:
    importlib.import_module(_name)

__all__ = ["use_fast_rgcn_in_baselines", "__version__"]
