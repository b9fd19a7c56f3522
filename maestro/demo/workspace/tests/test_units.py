from shapes.units import to_metres


def test_centimetres() -> None:
    assert to_metres(250, "cm") == 2.5
