FACTORS = {"m": 1.0, "cm": 0.01, "mm": 0.001}


def to_metres(value: float, unit: str) -> float:
    return value * FACTORS[unit]
