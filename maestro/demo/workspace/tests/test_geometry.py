import math

from shapes.geometry import circle_area, square_area


def test_circle_area() -> None:
    assert circle_area(1) == math.pi


def test_square_area() -> None:
    assert square_area(3) == 9
