"""The client APIs by the name a route's metadata and an attempt's endpoint carry."""

from __future__ import annotations

from edge_ext.apis.anthropic import ANTHROPIC
from edge_ext.apis.base import ClientAPI
from edge_ext.apis.openai import OPENAI
from edge_ext.apis.responses import RESPONSES

CLIENT_APIS: dict[str, ClientAPI] = {api.name: api for api in (OPENAI, ANTHROPIC, RESPONSES)}
