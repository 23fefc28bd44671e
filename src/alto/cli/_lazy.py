"""A typer group whose named subcommands are built from another module's typer app on first use.

``alto demo`` and ``alto eval`` live in :mod:`alto_apps.cli`; the ``alto`` group names
them here, so that module (and :mod:`alto_apps`) is imported only when ``alto --help``
lists them or one of them runs, never by ``import alto.cli``.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, ClassVar, NamedTuple

import typer
from rich.console import Console
from typer import _click  # typer's own click (typer 0.29 carries it; mixing in click would break)
from typer.core import TyperGroup


class Lazy(NamedTuple):
    """Subcommand ``name`` of the typer app at ``target`` (``module:attribute``), listed before ``before``."""

    target: str
    before: str | None = None


@functools.cache
def _group(target: str) -> TyperGroup:
    module_name, _, attr = target.partition(":")
    return typer.main.get_group(getattr(importlib.import_module(module_name), attr))


def _unavailable(name: str, exc: ModuleNotFoundError) -> _click.Command:
    """A command that says the module providing ``name`` is not installed."""
    stub = typer.Typer(add_completion=False)

    @stub.command(name, help=f"(unavailable: {exc.name} is not installed)")
    def fail() -> None:
        Console(stderr=True).print(f"{name}: needs {exc.name}, which is not installed ({exc})", markup=False)
        raise typer.Exit(1)

    return typer.main.get_command(stub)


class LazyGroup(TyperGroup):
    """Adds the subcommands in ``lazy`` (name -> :class:`Lazy`) to those registered eagerly.

    Subclass it and set ``lazy``; pass the subclass as ``typer.Typer(cls=...)``.
    """

    lazy: ClassVar[dict[str, Lazy]] = {}

    def list_commands(self, ctx: _click.Context) -> list[str]:
        names = [n for n in super().list_commands(ctx) if n not in self.lazy]
        for name, spec in self.lazy.items():
            names.insert(names.index(spec.before) if spec.before in names else len(names), name)
        return names

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        spec = self.lazy.get(cmd_name)
        if spec is None:
            return super().get_command(ctx, cmd_name)
        try:
            group = _group(spec.target)
        except ModuleNotFoundError as exc:
            module_name = spec.target.partition(":")[0]
            if exc.name is None or not (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
                raise  # a module that the target's module needs: a real error, shown as is
            return _unavailable(cmd_name, exc)
        return group.get_command(ctx, cmd_name)

    def resolve_command(self, ctx: _click.Context, args: list[str]) -> tuple[str | None, Any, list[str]]:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            # an unknown name: load the lazy commands so that typer's "Did you mean ...?" considers them too
            for name in self.lazy:
                command = self.get_command(ctx, name)
                if command is not None:
                    self.commands.setdefault(name, command)
        return super().resolve_command(ctx, args)
