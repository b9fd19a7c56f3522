import pytest

from shapes.report import describe


def test_describe_square() -> None:
    assert describe("square", 2) == "square of 2m: 4.0000 m²"


def test_cases_from_data_file(cases: list[dict[str, object]]) -> None:
    for case in cases:
        text = describe(str(case["kind"]), float(str(case["size"])), str(case["unit"]))
        assert f"{float(str(case['area'])):.4f}" in text


@pytest.mark.parametrize("unit", ["m", "mm"])
def test_units_accepted(unit: str) -> None:
    assert describe("circle", 1, unit).startswith("circle")
