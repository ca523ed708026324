from edge_ext.extproc.pb import accesslog_pb2 as _accesslog_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
