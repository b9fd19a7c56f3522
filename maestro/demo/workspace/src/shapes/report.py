from shapes.geometry import circle_area, square_area
from shapes.units import to_metres


def describe(kind: str, size: float, unit: str = "m") -> str:
    metres = to_metres(size, unit)
    area = circle_area(metres) if kind == "circle" else square_area(metres)
    return f"{kind} of {size}{unit}: {area:.4f} m²"
