from edge_ext.config.loader import ConfigInvalid, Problem, load_config, parse_config
from edge_ext.config.models import Config, Provider

__all__ = ["Config", "ConfigInvalid", "Problem", "Provider", "load_config", "parse_config"]
