"""Letting an answer out: the model's pieces go through the answer's sentence gate, and only what
it releases is shown, with the citations its markers then show. A sentence that stops the answer
ends generation, and the answer becomes the refusal."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field

from answer.citations import CitationStream, best_quote
from answer.generation import Ask, Drafter, Generation, ms
from answer.prompts import REFUSAL
from answer.types import Citation, Piece, Released, SentenceGate

_MARKER = re.compile(r"\[(\d+)\]")


@dataclass(slots=True)
class Shown:
    """What the employee has been shown of an answer, and the citations sent with it."""

    parts: list[str] = field(default_factory=list)
    # What had been shown when a sentence stopped the answer (streamed sentence by sentence).
    before_stop: str = ""
    pending: dict[int, Citation] = field(default_factory=dict)
    cited: dict[int, Citation] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def piece(self, released: Released) -> Piece | None:
        """The piece to send for what a gate released, with the citations its markers now show."""
        if released.text:
            self.parts.append(released.text)
        text = self.text
        now = tuple(c for n, c in self.pending.items() if n not in self.cited and f"[{n}]" in text)
        self.cited.update((c.number, c) for c in now)
        return Piece(released.text, now) if released.text or now else None


async def release(
    drafter: Drafter,
    ask: Ask,
    gate: SentenceGate,
    citations: CitationStream,
    generation: Generation,
    shown: Shown,
) -> AsyncGenerator[Piece, None]:
    """The drafter's pieces as ``gate`` lets them out, recorded in ``shown``."""
    released = Released("")
    async with aclosing(drafter.stream(ask, citations, generation)) as pieces:
        async for piece in pieces:
            if generation.outcome == "extractive":
                gate.quoting()
            shown.pending.update((c.number, c) for c in piece.citations)
            released = await gate.feed(piece.text)
            if released.blocked:
                break
            if (out := shown.piece(released)) is not None:
                generation.timings.setdefault("first_shown", ms(generation.started))
                yield out
            if released.done:
                break  # the answer is as long as the policy allows: the model's stream is closed (aborted)
    if not released.blocked:
        tail = citations.close()
        shown.pending.update((c.number, c) for c in tail.citations)
        released = await gate.feed(tail.text)
    if not released.blocked:
        released = await gate.close()
        # The gate may cite passages the model did not (the abstention's closest passages).
        by_number = {s.number: s for s in ask.sources}
        for number in map(int, _MARKER.findall(released.text)):
            if number not in shown.pending and number in by_number:
                source = by_number[number]
                shown.pending[number] = Citation(number, source, best_quote(source.text, released.text))
    if released.blocked:
        generation.outcome = "blocked"
        lead = "\n\n" if shown.parts else ""
        shown.before_stop = shown.text
        shown.parts[:] = [REFUSAL]
        shown.cited.clear()
        yield Piece(lead + REFUSAL)
    elif (out := shown.piece(released)) is not None:
        generation.timings.setdefault("first_shown", ms(generation.started))
        yield out
