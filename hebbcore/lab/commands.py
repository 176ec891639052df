"""The lab's ``hebbcore`` subcommands, registered like a third party's (entry point ``lab``)."""

from __future__ import annotations

from hebbcore import hookimpl
from hebbcore.interfaces import Command


class BenchCommand(Command):
    name = "bench"
    help = "time a Hebbian epoch of the paper's net against its floor and SGD"

    @classmethod
    def add_arguments(cls, parser) -> None:
        from .bench import add_arguments

        add_arguments(parser)

    def run(self, args, registry) -> int:
        from hebbcore.allocator import tune_malloc

        from .bench import cli_main

        tune_malloc()  # as hebbcore run does: keep freed step buffers for the next step
        return cli_main(args, registry)


@hookimpl
def hebbcore_register_commands():
    return [BenchCommand]
