"""The 0.5.23 command-line parser, rebuilt from the real option table (server_options.json).

`ServerArgs.add_cli_args(parser)` adds every option of the real parser to an argparse parser,
with the same flags, value/no-value, types, choices and defaults, so argparse errors (unknown
or misspelled flag, missing value, bad choice, bad type; exit 2) read as the real ones do.
Type functions carry the real names because argparse prints them ("invalid int value").
"""

import argparse
import json
import os
import re
from dataclasses import dataclass, field

OPTIONS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server_options.json")
SUPPRESS = "==SUPPRESS=="


def load_option_table():
    with open(OPTIONS_FILE, encoding="utf-8") as f:
        return json.load(f)


def human_readable_int(value):
    value = value.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])", value)
    if match:
        number, suffix = match.groups()
        decimal = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
        binary = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        if suffix in decimal:
            return int(float(number) * decimal[suffix])
        return int(number) * binary[suffix]
    return int(value)


def nullable_str(value):
    if not value or value.lower() in ("none", "null"):
        return None
    return value


def loads(value):
    return json.loads(value)


def json_list_type(value):
    result = json.loads(value)
    if not isinstance(result, list):
        raise ValueError(value)
    return result


def parse_cuda_graph_backend_arg(value):
    return value


def parse_cuda_graph_config_arg(value):
    return json.loads(value) if value.strip().startswith("{") else value


TYPES = {
    "str": str,
    "int": int,
    "float": float,
    "human_readable_int": human_readable_int,
    "nullable_str": nullable_str,
    "loads": loads,
    "json_list_type": json_list_type,
    "parse_cuda_graph_backend_arg": parse_cuda_graph_backend_arg,
    "parse_cuda_graph_config_arg": parse_cuda_graph_config_arg,
}


def _add_option(parser, opt):
    flags = opt["flags"]
    kwargs = {"dest": opt["dest"]}
    if opt["default"] != SUPPRESS:
        kwargs["default"] = opt["default"]
    if opt["deprecated"]:
        kwargs["help"] = "[DEPRECATED]"
    if not opt["takes_value"]:
        if len(flags) == 2 and flags[1] == "--no-" + flags[0][2:]:
            parser.add_argument(flags[0], action=argparse.BooleanOptionalAction, **kwargs)
        elif opt["default"] is True:
            parser.add_argument(*flags, action="store_false", **kwargs)
        else:
            parser.add_argument(*flags, action="store_true", **kwargs)
        return
    if opt["type"] is not None:
        kwargs["type"] = TYPES[opt["type"]]
    if opt["choices"] is not None:
        kwargs["choices"] = opt["choices"]
    if opt["nargs"] is not None:
        kwargs["nargs"] = opt["nargs"]
        if opt["nargs"] == "?":
            kwargs["const"] = "auto"
    parser.add_argument(*flags, **kwargs)


@dataclass
class ServerArgs:
    """Holds the parsed options (attribute per dest, as the real dataclass does)."""

    values: dict = field(default_factory=dict)

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    @staticmethod
    def add_cli_args(parser):
        for opt in load_option_table()["options"]:
            if opt["dest"] == "help":
                continue  # argparse adds -h/--help itself
            _add_option(parser, opt)

    @classmethod
    def from_cli_args(cls, args):
        values = dict(vars(args))
        if values.get("tokenizer_path") is None:
            values["tokenizer_path"] = values.get("model_path")
        if values.get("served_model_name") is None:
            values["served_model_name"] = values.get("model_path")
        return cls(values=values)

    def log_repr(self, family):
        """What the launcher logs after `server_args=`: 0.5.23 logs the resolved dict
        (engine.py:1185, `_server_args_for_logging`: only watermark secrets redacted, so the
        api_key shows), older releases the dataclass repr (0.5.9 engine.py:1031)."""
        if family == "0.5.9":
            return repr(self)
        return repr(dict(self.values))

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"ServerArgs({inner})"


def make_parser(prog=None):
    table = load_option_table()
    parser = argparse.ArgumentParser(prog=prog, allow_abbrev=table.get("allow_abbrev", True))
    ServerArgs.add_cli_args(parser)
    return parser


def prepare_server_args(argv, prog=None):
    """Parse argv like the real `prepare_server_args` (argparse exits 2 on a bad command line)."""
    parser = make_parser(prog)
    args = parser.parse_args(argv)
    return ServerArgs.from_cli_args(args)
