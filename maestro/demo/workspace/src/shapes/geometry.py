import math


def circle_area(radius: float) -> float:
    return math.pi * radius**2


def square_area(side: float) -> float:
    return side * side
