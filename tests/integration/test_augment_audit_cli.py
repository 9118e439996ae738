"""``python -m fastap_lab.audit``: writes audit.json / .md / .csv into a fresh folder and refuses
a bad value in one line."""

PHANTOM = ["data=phantom_tiny"]


def test_cli_writes_the_audit_and_refuses_a_bad_value(cli, tmp_path):
    import json

    done = cli("audit", *PHANTOM, "augment=simclr", "out=audit")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert record["phase_source"] == "labels.csv displacement column"
    ops = [row["op"] for row in record["ops"]]
    assert ops[:2] == ["shift", "zoom"] and "remap" not in ops  # simclr has remap off
    assert set(record["unsafe"]) <= set(ops)
    assert "| shift |" in (tmp_path / "audit" / "audit.md").read_text()
    again = cli("audit", *PHANTOM, "out=audit")
    assert again.returncode == 0 and (tmp_path / "audit-2" / "audit.csv").is_file()
    bad = cli("audit", *PHANTOM, "audit.max_frames=2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == ["error: audit.max_frames=2: must be >= 8"]
