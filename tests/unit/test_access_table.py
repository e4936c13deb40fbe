"""The README's permission table is the matrix in ``domain/access.py``, row for row."""

from pathlib import Path

from domain.access import ROLE_PERMISSIONS, Role, matrix_rows, permissions_of

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_matches_the_matrix():
    text = README.read_text()
    roles = [r.value for r in Role]
    assert "| permission | allows | " + " | ".join(roles) + " |" in text
    for name, allows, holders in matrix_rows():
        row = f"| `{name}` | {allows} | " + " | ".join(
            "✓" if r in holders else "" for r in roles) + " |"
        assert row in text, f"README row for {name} is out of date"


def test_the_auditor_only_reads_and_the_tenant_holds_no_staff_power():
    auditor = ROLE_PERMISSIONS[Role.AUDITOR]
    assert all(p.endswith(".read") or p == "audit.read" for p in auditor)
    tenant = permissions_of(["tenant"])
    assert not tenant & {"money.top_up", "money.refund", "money.adjust", "money.reverse",
                         "devices.command", "operators.manage", "ledger.read"}
    assert permissions_of(["finance", "operator"]) == \
        ROLE_PERMISSIONS[Role.FINANCE] | ROLE_PERMISSIONS[Role.OPERATOR]
