"""A small list of real-world landmarks, cities and countries, for pretrained models (SmolLM2).

Packaged as a `World` so the same prompt builders serve both the synthetic and the real
facts (`corpus.fact_prompts(real_world(), "all", ["city", "country"])`). Only geography:
no people, no essence facts. Well-known entries were chosen so a 135M-parameter model has
a chance of knowing them; whether it does is measured, not assumed.
"""

from __future__ import annotations

from lm_interp.models.world import Fact, World

# country -> cities; landmark -> city
REAL_CITIES: dict[str, tuple[str, ...]] = {
    "France": ("Paris", "Lyon", "Marseille"),
    "Italy": ("Rome", "Milan", "Venice"),
    "England": ("London", "Manchester", "Liverpool"),
    "Germany": ("Berlin", "Munich", "Hamburg"),
    "Spain": ("Madrid", "Barcelona", "Seville"),
    "Japan": ("Tokyo", "Osaka", "Kyoto"),
    "America": ("New York", "Chicago", "San Francisco"),
    "Egypt": ("Cairo", "Alexandria", "Luxor"),
    "China": ("Beijing", "Shanghai", "Xi'an"),
    "Russia": ("Moscow", "Saint Petersburg", "Kazan"),
}
REAL_LANDMARKS: dict[str, str] = {
    "the Eiffel Tower": "Paris", "the Louvre": "Paris", "the Arc de Triomphe": "Paris",
    "the Colosseum": "Rome", "the Trevi Fountain": "Rome", "the Vatican Museums": "Rome",
    "Big Ben": "London", "Buckingham Palace": "London", "Tower Bridge": "London",
    "the Brandenburg Gate": "Berlin", "the Reichstag": "Berlin", "the Berlin Wall Memorial": "Berlin",
    "the Sagrada Familia": "Barcelona", "the Prado Museum": "Madrid", "Park Guell": "Barcelona",
    "Tokyo Tower": "Tokyo", "the Fushimi Inari Shrine": "Kyoto", "Osaka Castle": "Osaka",
    "the Statue of Liberty": "New York", "the Golden Gate Bridge": "San Francisco", "the Empire State Building": "New York",
    "the Egyptian Museum": "Cairo", "the Valley of the Kings": "Luxor", "the Karnak Temple": "Luxor",
    "the Forbidden City": "Beijing", "the Terracotta Army": "Xi'an", "the Oriental Pearl Tower": "Shanghai",
    "the Kremlin": "Moscow", "Red Square": "Moscow", "the Hermitage Museum": "Saint Petersburg",
}

# contexts that mention a subject; the text after the subject does not matter for probing its last token
PROBE_CONTEXTS = ("{s} is located in the country of", "Last year I visited {s} with my family.",
                  "Here is a photo of {s}.", "Tell me something about {s}.", "Many tourists go to see {s} every year.")


def real_world() -> World:
    """The real-geography facts as a `World` (landmark -> city, landmark/city -> country)."""
    city_country = {city: country for country, cities in REAL_CITIES.items() for city in cities}
    missing = sorted({c for c in REAL_LANDMARKS.values() if c not in city_country})
    if missing:
        raise ValueError(f"landmark cities {missing} have no country in REAL_CITIES")
    facts = [Fact(lm, "city", city) for lm, city in REAL_LANDMARKS.items()]
    facts += [Fact(lm, "country", city_country[city]) for lm, city in REAL_LANDMARKS.items()]
    facts += [Fact(city, "country", country) for city, country in city_country.items()]
    return World(-1, city_country, dict(REAL_LANDMARKS), {}, tuple(facts))
