"""The ``depends_on`` graph of registered components: no cycles, parents before children.

Kept apart from the manager because three things read it: registration (a component
that would close a cycle is refused), ``run_all`` (checked one dependency level at a
time, roots first) and publication (a parent's status change can change its children's
heal state, SUPPRESSED or not). A parent that is not registered yet is allowed: it
counts as healthy until it is, and its children are indexed under its name meanwhile.
"""

from __future__ import annotations

__all__ = ["Dependencies"]


class Dependencies:
    """Parents and children of every registered component; not thread-safe on its own."""

    __slots__ = ("_children", "_parents")

    def __init__(self) -> None:
        self._parents: dict[str, tuple[str, ...]] = {}
        self._children: dict[str, set[str]] = {}

    def refuse_cycle(self, name: str, parents: tuple[str, ...]) -> None:
        """Raise ``ValueError`` if ``name`` depending on ``parents`` would close a cycle."""
        stack, seen = list(parents), set()
        while stack:
            parent = stack.pop()
            if parent == name:
                msg = f"depends_on of {name!r} would close a cycle"
                raise ValueError(msg)
            if parent in seen or parent not in self._parents:
                continue
            seen.add(parent)
            stack.extend(self._parents[parent])

    def add(self, name: str, parents: tuple[str, ...]) -> None:
        """Register ``name`` with its parents; call :meth:`refuse_cycle` first."""
        self._parents[name] = parents
        for parent in parents:
            self._children.setdefault(parent, set()).add(name)

    def remove(self, name: str) -> None:
        """Forget ``name``; children that named it keep naming it (it may come back)."""
        for parent in self._parents.pop(name, ()):
            children = self._children.get(parent)
            if children is not None:
                children.discard(name)
                if not children:
                    del self._children[parent]

    def children(self, name: str) -> frozenset[str]:
        """Registered components that name ``name`` in their ``depends_on``."""
        return frozenset(self._children.get(name, ()))

    def levels(self) -> list[list[str]]:
        """Component names grouped by dependency depth, roots first, each level sorted."""
        depth: dict[str, int] = {}
        for name in self._topological():
            parents = [p for p in self._parents[name] if p in depth]
            depth[name] = 1 + max((depth[p] for p in parents), default=-1)
        levels: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
        for name, level in depth.items():
            levels[level].append(name)
        return levels

    def _topological(self) -> list[str]:
        order: list[str] = []
        placed: set[str] = set()
        for root in sorted(self._parents):
            stack: list[tuple[str, bool]] = [(root, False)]
            while stack:  # iterative: a chain of thousands must not hit the recursion limit
                name, expanded = stack.pop()
                if expanded:
                    order.append(name)
                    continue
                if name in placed or name not in self._parents:
                    continue
                placed.add(name)
                stack.append((name, True))
                stack.extend((p, False) for p in reversed(self._parents[name]))
        return order
