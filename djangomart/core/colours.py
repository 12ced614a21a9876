"""What the shop accepts as a brand colour: #rgb or #rrggbb. One rule for the
environment's SHOP_*_COLOR settings (settings.py) and the admin's Brand settings
(storefront.models): the value goes into CSS as it is."""

import re

COLOUR_PATTERN = r"^#(?:[0-9a-fA-F]{3}){1,2}$"


def is_colour(value: str) -> bool:
    return re.fullmatch(COLOUR_PATTERN, value) is not None
