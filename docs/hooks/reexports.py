"""Griffe extension for the API pages: a package's `__init__` re-exports its public names from its own
submodules (`from .probes import LinearProbe, ...`), with no `__all__`. Griffe counts imported names as
private, so mark those re-exports public: `::: igpt_lite.probe` then documents `igpt_lite.probe.LinearProbe`
under the name users import, and keeps working when a submodule is split or renamed."""
from __future__ import annotations

import griffe


class PackageReexports(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._mark(pkg)

    def _mark(self, module: griffe.Module) -> None:
        for name, member in list(module.members.items()):
            if member.is_alias:
                if (module.is_init_module and not name.startswith("_")
                        and member.target_path.startswith(module.path + ".")):
                    member.public = True
            elif member.is_module:
                self._mark(member)
