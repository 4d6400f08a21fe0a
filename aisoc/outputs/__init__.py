"""Alert outputs: NDJSON file, HTTP webhook, syslog CEF; one interface, one dispatcher over them."""

from aisoc.outputs.base import Backoff, Output, OutputConfigError, OutputResult
from aisoc.outputs.config import OutputsConfig, build_dispatcher, build_output
from aisoc.outputs.dispatcher import DispatchReport, OutputDispatcher
from aisoc.outputs.ndjson import NdjsonFileOutput
from aisoc.outputs.syslog import SyslogCefOutput, cef_message
from aisoc.outputs.webhook import WebhookOutput, verify_signature

__all__ = [
    "Backoff", "DispatchReport", "NdjsonFileOutput", "Output", "OutputConfigError", "OutputDispatcher",
    "OutputResult", "OutputsConfig", "SyslogCefOutput", "WebhookOutput", "build_dispatcher", "build_output",
    "cef_message", "verify_signature",
]
