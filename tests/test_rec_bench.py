"""bench.recommendation on hand-made records: ranks read from a dump, the tested validation state, mean and std over
seeds, the paired tests against each row's reference, the deterministic shortcut rows and the markdown table."""
import json

import pytest

import bench.recommendation as rec


def record(name, model, seed, ranks, hit10, valid=None, pretraining=rec.HEADLINE_PRETRAINING, variant=None):
    history = [{"mode": "val", "epoch": e, "metrics": {"hit@1": h1, "hit@10": h10, "hit@50": h50}}
               for e, (h1, h10, h50) in enumerate(valid or [])]
    test = {key: hit10 for _, key in rec.TABLE}
    result = {"name": name, "model": model, "seed": seed, "ranks": ranks, "test": test, "history": history,
              "git_commit": "abc1234", "pretrain_seed": 42 if model == "C2CRS" else None, "variant": variant,
              "valid_recall_at_10": hit10}
    if model == "C2CRS" and pretraining != rec.UNNAMED_PRETRAINING:  # the earlier records have no such field
        result["pretraining"] = pretraining
    return result


def test_target_ranks_come_from_the_dump(tmp_path):
    dump = tmp_path / "dump.jsonl"
    lines = [{"conv_id": "7", "turn": 1, "targets": [{"rank": 3, "in_context": False},
                                                      {"rank": None, "in_context": True}]},
             {"conv_id": "7", "turn": 3, "targets": [{"rank": None, "in_context": None}]}]  # not scored
    dump.write_text("\n".join(json.dumps(line) for line in lines))
    assert rec.target_ranks(dump) == {"7/1/0": 3, "7/1/1": None}


def test_the_validation_recall_of_the_tested_state():
    curve = [(0.01, 0.10, 0.30), (0.03, 0.12, 0.35), (0.02, 0.14, 0.31)]
    c2crs = record("C2CRS", "C2CRS", 1, {}, 0.0, curve)
    kbrd = record("KBRD", "KBRD", 1, {}, 0.0, curve)
    assert rec.tested_validation(c2crs) == 0.12  # the best epoch on R@1 + R@50 is restored
    assert rec.tested_validation(kbrd) == 0.14   # CRSLab's systems keep the last epoch


def test_summary_over_seeds_with_paired_tests(tmp_path, monkeypatch):
    monkeypatch.setattr(rec, "RECORDS", tmp_path)
    folder = tmp_path / "recommender"
    folder.mkdir()
    keys = [f"c/{t}/0" for t in range(40)]
    strong = {key: 0 for key in keys[:30]} | {key: None for key in keys[30:]}   # 30 of 40 hit
    weak = {key: 0 for key in keys[:5]} | {key: None for key in keys[5:]}       # 5 of 40 hit
    for seed, hit10 in ((42, 0.74), (43, 0.76)):
        json.dump(record(rec.REFERENCE, "C2CRS", seed, strong, hit10), open(folder / f"{rec.REFERENCE}-seed{seed}.json",
                                                                             "w"))
    json.dump(record("Popularity", "Popularity", 42, weak, 0.125), open(folder / "Popularity-seed42.json", "w"))
    # context sizes: 9 targets with none (4 hit), 20 with 1-2 (all hit), 11 with 7 (6 hit)
    sizes = {key: 0 for key in keys[:4] + keys[35:]} | {key: 1 for key in keys[4:24]} | {key: 7 for key in keys[24:35]}
    rows = {row["name"]: row for row in rec.summarise("recommender", sizes)}
    c2crs, popularity = rows[rec.REFERENCE], rows["Popularity"]
    assert c2crs["seeds"] == [42, 43] and c2crs["mean"]["hit@10"] == pytest.approx(0.75)
    assert c2crs["std"]["hit@10"] == pytest.approx(0.0141421, abs=1e-6)
    assert c2crs["n_entityless"] == 9 and c2crs["mean"]["entityless_hit@10"] == pytest.approx(4 / 9)
    assert (c2crs["n_1-2"], c2crs["n_3-5"], c2crs["n_6+"]) == (20, 0, 11)
    assert c2crs["mean"]["1-2_hit@10"] == 1.0 and c2crs["mean"]["6+_hit@10"] == pytest.approx(6 / 11)
    buckets = rec.bucket_table({"protocols": {"recommender": list(rows.values())}}, "recommender")
    assert "| 0 context entities (9 targets) | 1-2 context entities (20 targets) |" in buckets
    assert "| C2-CRS | 0.444 | 1.000 | 0.000 | 0.545 |" in buckets
    assert popularity["deterministic"] and popularity["std"]["hit@10"] == 0.0
    test = popularity["tests"]["hit@10"]
    assert test["difference"] == pytest.approx(0.625) and test["p_value"] < 1e-3 and test["n"] == 40
    assert not c2crs["tests"]
    table = rec.markdown({"git_commit": "abc", "protocols": {"recommender": list(rows.values()), "all": []}})
    assert "| C2-CRS | 2 (pre-training seed 42) | " in table and "| Popularity | deterministic | 0.1250 |" in table
    assert "+0.6250 (p 0.0002)" in table and "Kostric & Balog" in table and "Authors' protocol" not in table


def summary(name, model, seeds, hit10, variant=None, pretrain_seed=None, tests=None, pretraining=None,
            reference=rec.REFERENCE):
    return {"name": name, "model": model, "variant": variant, "seeds": seeds, "deterministic": False,
            "pretrain_seed": pretrain_seed, "pretraining": pretraining, "reference": reference,
            "commits": ["abc1234"], "n_targets": 100, "n_entityless": 9,
            "mean": {"hit@1": 0.01, "hit@10": hit10, "hit@50": 0.3, "valid_hit@10": hit10 + 0.01,
                     "entityless_hit@10": 0.05},
            "std": {"hit@1": 0.0, "hit@10": 0.002, "hit@50": 0.0, "valid_hit@10": 0.001, "entityless_hit@10": 0.0},
            "tests": tests or {}}


def paired(difference, p_value):
    return {f"hit@{k}": {"difference": difference, "p_value": p_value, "n": 100} for k in (10, 50)}


def test_each_row_is_tested_against_its_reference(tmp_path, monkeypatch):
    """Every model against C2-CRS at the config's pre-training, the earlier pre-training's run too; a variant and
    another pre-training seed against their own pre-training's run."""
    monkeypatch.setattr(rec, "RECORDS", tmp_path)
    folder = tmp_path / "recommender"
    folder.mkdir()
    keys = [f"c/{t}/0" for t in range(40)]
    hits = {n: {key: 0 for key in keys[:n]} | {key: None for key in keys[n:]} for n in (10, 20, 30)}
    earlier = rec.UNNAMED_PRETRAINING
    for name, model, n, pretraining, variant in ((rec.REFERENCE, "C2CRS", 30, rec.HEADLINE_PRETRAINING, None),
                                                 ("C2CRS", "C2CRS", 20, earlier, None),
                                                 ("C2CRS-no_bias", "C2CRS", 10, earlier, "no_bias"),
                                                 ("KBRD", "KBRD", 10, None, None)):
        result = record(name, model, 42, hits[n], n / 40, pretraining=pretraining, variant=variant)
        json.dump(result, open(folder / f"{name}-seed42.json", "w"))
    rows = rec.summarise("recommender")
    assert [row["name"] for row in rows] == [rec.REFERENCE, "C2CRS", "C2CRS-no_bias", "KBRD"]
    named = {row["name"]: row for row in rows}
    assert named["C2CRS"]["pretraining"] == earlier and named["C2CRS"]["reference"] == rec.REFERENCE
    assert named["C2CRS"]["tests"]["hit@10"]["difference"] == pytest.approx(0.25)
    assert named["C2CRS-no_bias"]["reference"] == "C2CRS"
    assert named["C2CRS-no_bias"]["tests"]["hit@10"]["difference"] == pytest.approx(0.25)
    assert named["KBRD"]["tests"]["hit@10"]["difference"] == pytest.approx(0.5) and not named[rec.REFERENCE]["tests"]
    report = {"protocols": {"recommender": rows}}
    readme = rec.table(report, "recommender", variants=False)
    assert "| C2-CRS | 1 (pre-training seed 42) |" in readme and "no item bias" not in readme
    assert "| C2-CRS, 40 + 40 pre-training batches | 1 (pre-training seed 42) |" in readme
    detail = rec.table(report, "recommender", rec.DOCS_COLUMNS)
    assert "| tested against | reference − row: R@10 (p) |" in detail
    assert "| C2-CRS, 40 + 40 pre-training batches, no item bias | 1 (pre-training seed 42) |" in detail
    assert "| C2-CRS, 40 + 40 pre-training batches | +0.2500 (p " in detail
    assert "| C2-CRS | +0.5000 (p " in detail


def test_the_generated_tables_and_findings():
    earlier = rec.UNNAMED_PRETRAINING
    rows = [summary(rec.REFERENCE, "C2CRS", [42, 43, 44], 0.20, pretrain_seed=42,
                    pretraining=rec.HEADLINE_PRETRAINING, reference=None),
            summary("C2CRS", "C2CRS", [42, 43, 44], 0.195, pretrain_seed=42, pretraining=earlier,
                    tests=paired(0.005, 0.5)),
            summary("C2CRS-no_bias", "C2CRS", [42, 43], 0.185, variant="no_bias", pretrain_seed=42,
                    pretraining=earlier, reference="C2CRS", tests=paired(0.01, 0.03)),
            summary("C2CRS-p43", "C2CRS", [42, 43, 44], 0.185, pretrain_seed=43, pretraining=earlier,
                    reference="C2CRS", tests=paired(0.01, 0.2)),
            summary("KGSF", "KGSF", [42, 43, 44], 0.18, tests=paired(0.02, 0.01)),
            summary("KBRD", "KBRD", [42, 43, 44], 0.17, tests=paired(0.03, 0.001))]
    report = {"protocols": {"recommender": rows, "all": rows[:1]}}
    readme = rec.table(report, "recommender", variants=False)
    assert "no item bias" not in readme and "pre-training seed 43" not in readme
    assert "| C2-CRS | 3 (pre-training seed 42) | " in readme
    assert "| KGSF: Kostric & Balog 2026, its own split | published | 0.034 | 0.179 | 0.365 |  |  |" in readme
    detail = rec.table(report, "recommender", rec.DOCS_COLUMNS)
    assert "| C2-CRS, 40 + 40 pre-training batches | 3 (pre-training seed 43) |" in detail
    assert "| KGSF: Kostric & Balog 2026, its own split | published | 0.034 | 0.179 | 0.365 |  |  |  |  |  |" in detail
    assert "C2-CRS paper, Table 1 | published | 0.053 | 0.233 | 0.407" in rec.table(report, "all")
    # 0.20 / 0.18 = 1.11x with p < 0.05 against both baselines
    assert ": met.**" in rec.target_finding(report) and "1.11x the better one (KGSF)" in rec.target_finding(report)
    rows[4]["tests"] = paired(0.02, 0.06)
    assert ": missed.**" in rec.target_finding(report)
    spread = rec.pretraining_seed_finding(report)
    assert "over 2 seeds of its 40 + 40 pre-training batches" in spread
    assert "spread of the seed means 0.0100" in spread and "seed 43 − seed 42: -0.0100 (p 0.2)" in spread
    finding = rec.variant_finding(report, "no_bias")
    assert "0.2050 ± 0.0010 (3 rec seeds) by default against 0.1950 ± 0.0010 (2 rec seeds)" in finding
    assert "(default minus no item bias, paired on the targets: +0.0100 (p 0.03))" in finding
    assert "on the 9 targets" in finding
    assert "86% of the paper's 0.233" in rec.paper_finding(report)


@pytest.fixture
def bench_calls(tmp_path, monkeypatch):
    """A rec bench over ``tmp_path`` whose runs are recorded, not run: (bench, [(run name, overrides, extra)])."""
    monkeypatch.setattr(rec, "RECORDS", tmp_path)
    calls = []

    def run(self, run_name, model, seed, overrides, extra=None):
        calls.append((run_name, overrides, extra))
        return {"test": {"hit@10": 0.1}, "history": [], "bench_wall_seconds": 1.0}

    monkeypatch.setattr(rec.Bench, "run", run)
    return rec.Bench("recommender", str(tmp_path / "data"), tmp_path), calls


def test_a_variant_that_changes_pretraining_is_pretrained_in_a_folder_of_its_own(tmp_path, bench_calls):
    bench, calls = bench_calls
    bench.rec("C2CRS", 42, 42, "fast", rec.UNNAMED_PRETRAINING)
    bench.rec("C2CRS", 42, 42, "no_bias", rec.UNNAMED_PRETRAINING)
    (pretrain, pretrain_flags, _), (fast, fast_flags, fast_extra), (plain_pretrain, plain_flags, _), (no_bias, _, _) \
        = calls
    assert pretrain == "C2CRS-fast-pretrain-seed42" and plain_pretrain == "C2CRS-pretrain-seed42"
    assert set(rec.FAST_TRAINING) <= set(pretrain_flags) and "checkpoint_dir=rec-bench/C2CRS-fast-pretrain-seed42" \
        in pretrain_flags
    assert set(rec.FAST_TRAINING) <= set(fast_flags) and "checkpoint_dir=rec-bench/C2CRS-fast-pretrain-seed42" \
        in fast_flags
    assert not set(rec.FAST_TRAINING) & set(plain_flags)
    assert (tmp_path / "pretrain" / "C2CRS-fast-seed42.json").is_file()
    assert (tmp_path / "recommender" / "C2CRS-fast-seed42.json").is_file() and no_bias == "C2CRS-no_bias-seed42"
    # the rec runs keep the pre-training's epochs: they restore its last stage (fine.pth), whatever the config's
    assert {"coarse.epoch=1", "fine.epoch=1", "end_stage=rec"} <= set(fast_flags) and fast_extra == ["--stage", "rec"]
    assert {"fine.epoch=1", "fine.max_batches=40", "pretrain_mask_mentions=false", "end_stage=fine"} <= set(plain_flags)


def test_the_configs_pretraining_is_the_default_and_named_in_its_records(tmp_path, bench_calls):
    bench, calls = bench_calls
    bench.rec("C2CRS", 43, 42, None)
    (pretrain, pretrain_flags, _), (name, flags, _) = calls
    folder = "checkpoint_dir=rec-bench/C2CRS-coarse1-masked-pretrain-seed42"
    assert (pretrain, name) == ("C2CRS-coarse1-masked-pretrain-seed42", "C2CRS-coarse1-masked-seed43")
    assert {"coarse.epoch=1", "fine.epoch=0", "pretrain_mask_mentions=true", folder} <= set(pretrain_flags)
    assert not any("max_batches=40" in flag for flag in pretrain_flags)
    # no fine stage: the rec runs restore coarse.pth
    assert {"coarse.epoch=1", "fine.epoch=0", folder} <= set(flags)
    saved = json.loads((tmp_path / "recommender" / "C2CRS-coarse1-masked-seed43.json").read_text())
    assert saved["pretraining"] == "coarse1-masked" and saved["name"] == rec.REFERENCE
    assert json.loads((tmp_path / "pretrain" / "C2CRS-coarse1-masked-seed42.json").read_text())["pretraining"] \
        == "coarse1-masked"
    # the pre-training is done once its last stage's checkpoint exists
    checkpoint = tmp_path / "data" / "save" / "rec-bench" / "C2CRS-coarse1-masked-pretrain-seed42" / "coarse.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.touch()
    bench.rec("C2CRS", 44, 42, None)
    assert [call[0] for call in calls[2:]] == ["C2CRS-coarse1-masked-seed44"]


def test_kgsf_restores_its_own_cached_pretraining(tmp_path, bench_calls):
    bench, calls = bench_calls
    bench.rec("KGSF", 43, 42, None)
    (pretrain, pretrain_flags, _), (name, flags, extra) = calls
    folder = "checkpoint_dir=rec-bench/KGSF-pretrain-seed42"
    assert (pretrain, name, extra) == ("KGSF-pretrain-seed42", "KGSF-seed43", [])
    assert pretrain_flags == ["pretrain_cache=true", "rec.epoch=0", "conv.epoch=0", folder]
    assert flags == rec.REC_FLAGS["KGSF"] + [folder]
    saved = json.loads((tmp_path / "recommender" / "KGSF-seed43.json").read_text())
    assert saved["pretrain_seed"] == 42 and saved["pretraining"] is None
