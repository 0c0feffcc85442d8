"""A tenant's trained reranker: hard negatives from both arms, general groups, a real (short) training on
the samples' calibration questions, its held-out judgement, storage, and its use by the tenant's searches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ingest.embed import SentenceTransformerEmbedder
from ingest.tuning import calibration_inputs, run_calibration
from retrieval.pipeline import RetrievalPipeline
from retrieval.rerank import latest_trained, set_enabled, store_trained, trained_rerankers
from retrieval.rerank_train import (
    METADATA,
    Group,
    TrainingInputs,
    TrainingOptions,
    _negatives,
    general_groups,
    train_model,
    train_tenant,
)
from retrieval.tuning import latest
from retrieval.types import Caller, Candidate
from sourcebook.cli import app
from sourcebook.cli.setup import check_trained_rerankers
from sourcebook.db import Database
from sourcebook.keys import ensure_tenant
from sourcebook.models import resolve_model
from sourcebook.settings import Settings
from tests.conftest import TEST_PEPPER
from tests.retrieval_helpers import samples_without_model


def _candidate(chunk_id: int, bm25_rank: int | None, vector_rank: int | None) -> Candidate:
    return Candidate(
        chunk_id=chunk_id,
        document_id=uuid.uuid4(),
        ordinal=0,
        text=f"chunk {chunk_id}",
        context="",
        title="t",
        source_uri="u",
        page=None,
        heading_path=(),
        kind="text",
        content_hash="h",
        score=0.0,
        bm25_rank=bm25_rank,
        vector_rank=vector_rank,
    )


@pytest.mark.unit
def test_hard_negatives_alternate_between_the_arms_and_never_hold_the_positive() -> None:
    found = [
        _candidate(1, 1, 3),  # the positive
        _candidate(2, 2, None),
        _candidate(3, None, 1),
        _candidate(4, 3, 2),
        _candidate(5, 4, None),
    ]
    chosen = [c.chunk_id for c in _negatives(found, 1, 3)]
    assert chosen == [3, 2, 4]  # bm25's best is the positive, so vector's best, then bm25's second, ...
    assert [c.chunk_id for c in _negatives(found, 1, 10)] == [3, 2, 4, 5]


@pytest.mark.unit
def test_general_groups_take_the_passages_bm25_ranks_highest_for_the_question_as_negatives() -> None:
    pairs = [
        ("Which river flows through Paris?", "The Seine flows through Paris."),
        ("Who painted the Mona Lisa?", "Leonardo painted the Mona Lisa in Florence."),
        ("What is the capital of Italy?", "Rome is the capital of Italy."),
        ("Which river flows through Rome?", "The Tiber flows through Rome, the capital of Italy."),
        ("How tall is Mount Everest?", "Mount Everest is 8,849 metres tall."),
        ("When did the Berlin Wall fall?", "The Berlin Wall fell in 1989."),
        ("What do pandas eat?", "Pandas eat bamboo."),
        ("Who wrote Hamlet?", "Shakespeare wrote Hamlet."),
    ]
    groups = general_groups(pairs, negatives=2, name="toy")
    assert [g.positive for g in groups] == [p for _, p in pairs]
    assert all(g.positive not in g.negatives and len(g.negatives) == 2 and g.source == "toy" for g in groups)
    # "Which river flows through Rome?": the Paris river passage and the Rome capital passage share its words.
    assert set(groups[3].negatives) == {"The Seine flows through Paris.", "Rome is the capital of Italy."}


@pytest.fixture(scope="module")
def calibrated(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[Settings, Database]]:
    with samples_without_model(database_url, tmp_path_factory.mktemp("rerank"), embedder, "reranked") as (settings, db):
        run_calibration(settings, db, embedder, "reranked")
        yield settings, db


@pytest.mark.db
@pytest.mark.model
@pytest.mark.slow
def test_a_reranker_trained_on_the_calibration_questions_is_judged_stored_and_used_when_on(
    calibrated: tuple[Settings, Database], embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    settings, db = calibrated
    inputs = TrainingInputs(calibration_inputs(settings, db, embedder), resolve_model("all-MiniLM-L6-v2", offline=True))
    general = [Group("Which river flows through Paris?", "The Seine flows through Paris.", ("Rome.",), "toy")]
    stages: set[str] = set()
    done = train_tenant(
        inputs,
        tenant_id="reranked",
        out_root=tmp_path,
        general=lambda: general,
        options=TrainingOptions(epochs=2, max_length=128, device="cpu", min_gain=0.01),
        progress=lambda what, n, total: stages.add(what),
    )
    assert stages == {"searching the questions", "training"}
    assert (done.path / "config.json").is_file()
    assert (done.path / METADATA).is_file()
    assert not list(tmp_path.rglob("*.partial"))
    held, training = done.figures["held_out"], done.figures["training"]
    assert training["groups"]["general"] == 1
    assert training["groups"]["tenant"] >= 20
    assert training["loss_last_tenth"] < training["loss_first_tenth"]  # it learned something
    assert training["pairs_per_s"] > 0
    assert held["held_out"] >= 5
    assert held["better"] + held["worse"] <= held["held_out"]
    assert held["gain_interval_90"][0] <= held["gain"] <= held["gain_interval_90"][1]
    # The tuned fusion's held-out MRR here is calibration's own figure for the settings it stored, over
    # the same questions (calibration fuses 100 candidates per arm in Python; search fuses in SQL).
    with db.pool.connection() as conn:
        calibrated_figure = latest(conn, "reranked").figures["stored_on_held_out"]["mrr@10"]  # type: ignore[union-attr]
    assert held["fusion"] == pytest.approx(calibrated_figure, abs=0.05)

    with db.pool.connection() as conn, conn.transaction():
        store_trained(
            conn,
            tenant_id="reranked",
            tuning_id=done.tuning_id,
            model_path=str(done.path),
            figures=done.figures,
            enabled=False,
            reason="off for the test",
        )
        version = conn.execute("SELECT index_version FROM tenants WHERE id = 'reranked'").fetchone()
    pipeline = RetrievalPipeline(settings=settings, pool=db.pool, space=db.space, embedder=embedder)
    caller = Caller("reranked", ("everyone", "hr"))
    assert pipeline.retrieve("hotel cap", caller=caller).reranker == "none"

    with db.pool.connection() as conn, conn.transaction():
        switched = set_enabled(conn, "reranked", enabled=True, reason="on by hand")
        assert switched is not None
        assert switched.enabled
        after = conn.execute("SELECT index_version FROM tenants WHERE id = 'reranked'").fetchone()
        assert after[0] == version[0] + 1  # type: ignore[index]  # cached answers retire
        assert latest_trained(conn, "reranked") == switched
        assert "reranked on" in check_trained_rerankers(conn).detail
        assert [t.tenant_id for t in trained_rerankers(conn)] == ["reranked"]
    # The same running pipeline sees it at once: the bumped index_version makes it read the row again.
    found = pipeline.retrieve("hotel cap", caller=caller)
    assert found.reranker == switched.name
    assert found.reranker.startswith(f"reranked#{switched.id} ")
    assert found.reranked > 0
    assert all(c.rerank_score is not None for c in found.candidates[: found.reranked])
    off = RetrievalPipeline(
        settings=settings.model_copy(update={"tenant_rerankers": False}),
        pool=db.pool,
        space=db.space,
        embedder=embedder,
    )
    assert off.retrieve("hotel cap", caller=caller).reranker == "none"
    other = pipeline.retrieve("hotel cap", caller=Caller("untrained", ("everyone",)))
    assert other.reranker == "none"

    # A newer model stored off hides the older one that was on: only the newest row is ever used.
    with db.pool.connection() as conn, conn.transaction():
        store_trained(
            conn,
            tenant_id="reranked",
            tuning_id=done.tuning_id,
            model_path=str(tmp_path / "gone"),
            figures={"held_out": {"gain": None}},
            enabled=False,
            reason="below the required gain",
        )
        assert "reranked off (? MRR@10 held out)" in check_trained_rerankers(conn).detail
    assert pipeline.retrieve("hotel cap", caller=caller).reranker == "none"
    # Switched on while its model is not on this machine: doctor fails, searches keep the configured one.
    with db.pool.connection() as conn, conn.transaction():
        set_enabled(conn, "reranked", enabled=True, reason="on by hand")
        assert check_trained_rerankers(conn).status == "fail"
    assert pipeline.retrieve("hotel cap", caller=caller).reranker == "none"


@pytest.mark.model
def test_a_base_model_with_several_labels_is_fine_tuned_with_a_one_logit_head(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    minilm = resolve_model("all-MiniLM-L6-v2", offline=True).load_arg
    three = tmp_path / "nli-like"
    AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=3).save_pretrained(three)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(three)
    groups = [Group("how long is a vacation?", "Vacation lasts 25 days.", ("The VPN needs a token.",), "tenant")]
    figures = train_model(
        groups,
        resolve_model(str(three), offline=True),
        tmp_path / "out",
        TrainingOptions(epochs=1, max_length=64, device="cpu"),
        lambda what, n, total: None,
    )
    assert figures["steps"] == 1
    assert AutoConfig.from_pretrained(tmp_path / "out").num_labels == 1


@pytest.mark.db
def test_training_a_tenant_without_a_calibration_says_how_to_make_one(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER, "SOURCEBOOK_ENVIRONMENT": "test"}
    env["SOURCEBOOK_DATA_DIR"] = str(tmp_path)
    result = CliRunner().invoke(app, ["reranker", "train", "--tenant", "nobody", "--general", "none"], env=env)
    assert result.exit_code != 0
    assert "tenant 'nobody' does not exist" in str(result.exception)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_tenant(conn, "uncalibrated", "no calibration yet")  # type: ignore[arg-type]
    result = CliRunner().invoke(app, ["reranker", "train", "--tenant", "uncalibrated", "--general", "none"], env=env)
    assert result.exit_code != 0
    assert "sourcebook tune retrieval --tenant uncalibrated" in str(result.exception.hint)  # type: ignore[union-attr]
    assert not list(tmp_path.rglob("rerankers/*/*"))
    shown = CliRunner().invoke(app, ["reranker", "show", "--tenant", "nobody"], env=env)
    assert shown.exit_code != 0
    assert "has no trained reranker" in str(shown.exception)
