"""A SQuAD v1.1-shaped reading-comprehension fixture built from templated English passages.

Passages describe fictional people, cities, organisations, events and mountains (fictional so a model
must read the passage rather than recall facts). Every answer is a short span of its passage: a name,
place, year or quantity, sometimes with 2-3 gold alternatives ("1998" / "in 1998"). Offsets are recorded
while the passage is assembled, so ``context[answer_start:].startswith(text)`` holds by construction
(and is checked).
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable

from mathlora.errors import MathloraError

SQUAD_VERSION = "1.1"
PARAGRAPHS_PER_ARTICLE = 5

FEMALE_FIRST_NAMES = ("Amara", "Celia", "Esther", "Greta", "Ingrid", "Keiko", "Lucia", "Nadia", "Priya",
                      "Sofia", "Vera", "Ximena", "Zora", "Beatrix", "Delphine")
MALE_FIRST_NAMES = ("Bruno", "Dmitri", "Felix", "Hassan", "Jonas", "Mateo", "Oscar", "Rafael", "Tobias",
                    "Wendell", "Yusuf", "Anselm", "Cyrus")
SURNAMES = ("Albrecht", "Brennan", "Castellano", "Dufresne", "Eriksen", "Fairbanks", "Galloway", "Haldane",
            "Ivanova", "Jardine", "Kowalczyk", "Lindqvist", "Moreau", "Nakamura", "Okonkwo", "Pellegrini",
            "Quarles", "Rasmussen", "Szabo", "Thorne", "Umberti", "Valdez", "Whitcombe", "Yilmaz")
CITY_STEMS = ("Ash", "Bel", "Cor", "Dun", "Els", "Fair", "Glen", "Hal", "Iver", "Kel", "Lor", "Mar",
              "Nor", "Oak", "Pen", "Ros", "Stan", "Tal", "Vel", "Wick", "Bram", "Cal", "Dray", "Fen")
CITY_ENDINGS = ("ford", "haven", "mere", "ton", "bury", "wick", "field", "port", "dale", "stead", "moor",
                "brook", "gate", "holm")
COUNTRIES = ("Aldoria", "Beruvia", "Calestan", "Dravia", "Estmark", "Fenwyn", "Galdor", "Halvenia",
             "Istria Nova", "Korvath")
REGIONS = ("Northmarch", "Silverlake", "Redfern", "Eastvale", "Highmoor", "Saltcoast", "Greenhollow",
           "Stonereach")
RIVERS = ("Sel", "Amber", "Vorn", "Lisk", "Tamar", "Orrin", "Quell", "Brenna", "Dace", "Mirren")
FIELDS = ("chemistry", "economics", "architecture", "marine biology", "linguistics", "mechanical engineering",
          "astronomy", "music composition", "geology", "medicine", "mathematics", "agriculture")
INDUSTRIES = ("shipbuilding", "textiles", "glassmaking", "coffee trading", "software", "fishing",
              "winemaking", "steel production", "printing", "tourism", "salt mining", "clockmaking")
COMPANY_KINDS = ("Works", "Company", "Industries", "Laboratories", "Holdings", "Trading House")
ORG_KINDS = (("charitable", "Foundation"), ("scientific", "Society"), ("cultural", "Institute"),
             ("environmental", "Trust"), ("educational", "Association"), ("medical", "Alliance"))
ORG_THEMES = ("River Research", "Open Libraries", "Coastal Heritage", "Rural Health", "Young Engineers",
              "Mountain Rescue", "Folk Music", "Clean Water", "Urban Gardens", "Star Mapping")
AWARDS = ("Halvorsen Medal", "Golden Compass Prize", "Aster Award", "Meridian Prize", "Lantern Medal",
          "Copperfield Award")
FESTIVALS = ("Lantern Festival", "Harvest Fair", "River Regatta", "Glass Week", "Winter Market",
             "Kite Festival", "Jazz Weekend", "Book Fair")
BUILDINGS = ("Old Customs House", "Chapel of St. Arden", "Grey Tower", "Merchant Hall", "Bell Gate",
             "Weavers' Guildhall")
EVENTS = ("Robotics Championship", "Chess Open", "Choir Competition", "Rowing Cup", "Science Olympiad",
          "Bridge-Building Contest", "Marathon", "Film Festival")
MOUNTAIN_RANGES = ("Greywall", "Sunspire", "Frostcrown", "Ironback", "Cloudrest", "Emberline")
SEAS = ("Northern Sea", "Bay of Orla", "Gulf of Tessen", "Pale Sea", "Straits of Morrow")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


class Passage:
    """A passage assembled sentence by sentence, remembering where each marked span starts."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._marks: dict[str, tuple[int, str]] = {}

    def sentence(self, *pieces: str | tuple[str, str]) -> None:
        """Append one sentence; a ``(key, text)`` piece is a span that answers can refer to by key."""
        if self._parts:
            self._append(" ")
        for piece in pieces:
            if isinstance(piece, tuple):
                key, text = piece
                self._marks[key] = (self._length, text)
                self._append(text)
            else:
                self._append(piece)

    def _append(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    @property
    def context(self) -> str:
        return "".join(self._parts)

    def answer(self, key: str, text: str | None = None) -> dict:
        """The marked span ``key``, or a wider ``text`` around it (e.g. "in 1998" around "1998")."""
        start, marked = self._marks[key]
        text = marked if text is None else text
        start -= text.index(marked)
        if self.context[start:start + len(text)] != text:
            raise AssertionError(f"answer {text!r} is not at offset {start} of the passage")
        return {"text": text, "answer_start": start}


Question = tuple[str, list[dict]]


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FEMALE_FIRST_NAMES + MALE_FIRST_NAMES), rng.choice(SURNAMES)


def _with_article(word: str) -> str:
    return f"{'an' if word[0].lower() in 'aeiou' else 'a'} {word}"


def _cities(rng: random.Random, n: int) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = rng.choice(CITY_STEMS) + rng.choice(CITY_ENDINGS)
        if name not in names:
            names.append(name)
    return names


def _thousands(n: int) -> str:
    return f"{n:,}"


def biography_passage(rng: random.Random) -> tuple[str, Passage, list[Question]]:
    female = rng.random() < 0.5
    first = rng.choice(FEMALE_FIRST_NAMES if female else MALE_FIRST_NAMES)
    last = rng.choice(SURNAMES)
    full = f"{first} {last}"
    pronoun, possessive = ("She", "her") if female else ("He", "his")
    home, study_city, base_city = _cities(rng, 3)
    country = rng.choice(COUNTRIES)
    born = rng.randint(1900, 1990)
    grad = born + rng.randint(21, 27)
    founded = grad + rng.randint(3, 15)
    staff_year = founded + rng.randint(5, 20)
    staff = rng.randint(40, 20000)
    field, industry = rng.choice(FIELDS), rng.choice(INDUSTRIES)
    company = f"{rng.choice(SURNAMES)} {rng.choice(COMPANY_KINDS)}"
    award = rng.choice(AWARDS)
    award_year = staff_year + rng.randint(0, 8)
    p = Passage()
    p.sentence(f"{full} was born in ", ("home", home), f", {country}, on {rng.choice(MONTHS)} "
               f"{rng.randint(1, 28)}, ", ("born", str(born)), ".")
    p.sentence(f"{pronoun} studied ", ("field", field), f" at the University of {study_city} and graduated in ",
               ("grad", str(grad)), ".")
    p.sentence(f"In {founded}, {last} founded ", ("company", company),
               f", {_with_article(industry)} firm based in ", ("base", base_city), ".")
    p.sentence(f"By {staff_year}, the firm employed ", ("staff", _thousands(staff)), " people.")
    p.sentence(f"{last} received the ", ("award", award), f" in {award_year} for {possessive} work in {field}.")
    questions: list[Question] = [
        (f"Where was {full} born?", [p.answer("home"), p.answer("home", f"{home}, {country}")]),
        (f"In what year was {full} born?", [p.answer("born")]),
        (f"What did {last} study at the University of {study_city}?", [p.answer("field")]),
        (f"When did {last} graduate from the University of {study_city}?",
         [p.answer("grad"), p.answer("grad", f"in {grad}")]),
        (f"Which company did {last} found in {founded}?", [p.answer("company")]),
        (f"Where is {company} based?", [p.answer("base")]),
        (f"How many people did {company} employ by {staff_year}?",
         [p.answer("staff"), p.answer("staff", f"{_thousands(staff)} people")]),
        (f"Which award did {last} receive in {award_year}?",
         [p.answer("award"), p.answer("award", f"the {award}")]),
    ]
    return full, p, questions


def city_passage(rng: random.Random) -> tuple[str, Passage, list[Question]]:
    city, neighbour = _cities(rng, 2)
    country, region, river = rng.choice(COUNTRIES), rng.choice(REGIONS), rng.choice(RIVERS)
    distance = rng.randint(12, 480)
    census = rng.randint(1950, 2022)
    population = rng.randint(8000, 2_500_000)
    industry, festival, month = rng.choice(INDUSTRIES), rng.choice(FESTIVALS), rng.choice(MONTHS)
    building = rng.choice(BUILDINGS)
    built = rng.randint(1150, 1890)
    p = Passage()
    p.sentence(f"{city} is a {rng.choice(('small', 'large', 'historic', 'busy'))} city in the ",
               ("region", region), f" province of {country}.")
    p.sentence("It lies on the ", ("river", river), " River, about ", ("distance", f"{distance} kilometres"),
               f" from {neighbour}.")
    p.sentence(f"According to the {census} census, the city had a population of ",
               ("population", _thousands(population)), ".")
    p.sentence("Its economy is based on ", ("industry", industry), f", and every ", ("month", month),
               f" it hosts the {festival}.")
    p.sentence("The oldest building in the city, the ", ("building", building), ", was completed in ",
               ("built", str(built)), ".")
    questions: list[Question] = [
        (f"In which province is {city}?", [p.answer("region"), p.answer("region", f"the {region} province")]),
        (f"On which river does {city} lie?",
         [p.answer("river"), p.answer("river", f"{river} River"), p.answer("river", f"the {river} River")]),
        (f"How far is {city} from {neighbour}?",
         [p.answer("distance"), p.answer("distance", f"about {distance} kilometres")]),
        (f"What was the population of {city} in {census}?", [p.answer("population")]),
        (f"What is the economy of {city} based on?", [p.answer("industry")]),
        (f"In which month does {city} host the {festival}?",
         [p.answer("month"), p.answer("month", f"every {month}")]),
        (f"What is the oldest building in {city}?", [p.answer("building"), p.answer("building", f"the {building}")]),
        (f"When was the {building} in {city} completed?", [p.answer("built"), p.answer("built", f"in {built}")]),
    ]
    return city, p, questions


def organisation_passage(rng: random.Random) -> tuple[str, Passage, list[Question]]:
    kind, noun = rng.choice(ORG_KINDS)
    org = f"{rng.choice(ORG_THEMES)} {noun}"
    founder = " ".join(_person(rng))
    leader = " ".join(_person(rng))
    while leader == founder:
        leader = " ".join(_person(rng))
    (city,) = _cities(rng, 1)
    country = rng.choice(COUNTRIES)
    founded = rng.randint(1850, 2005)
    led_since = rng.randint(founded + 10, 2023)
    as_of = rng.randint(led_since, 2024)
    members, countries = rng.randint(120, 900_000), rng.randint(2, 85)
    budget = rng.randint(2, 950)
    p = Passage()
    p.sentence(f"The {org} is {_with_article(kind)} organisation founded in ", ("founded", str(founded)), " by ",
               ("founder", founder), ".")
    p.sentence("Its headquarters are in ", ("city", city), f", {country}.")
    p.sentence(f"As of {as_of}, it had ", ("members", _thousands(members)), " members in ",
               ("countries", str(countries)), " countries.")
    p.sentence("The organisation is led by ", ("leader", leader), ", who became its director in ",
               ("led", str(led_since)), ".")
    p.sentence("Its annual budget is about ", ("budget", f"{budget} million crowns"), ".")
    questions: list[Question] = [
        (f"Who founded the {org}?", [p.answer("founder")]),
        (f"When was the {org} founded?", [p.answer("founded"), p.answer("founded", f"in {founded}")]),
        (f"Where are the headquarters of the {org}?", [p.answer("city"), p.answer("city", f"{city}, {country}")]),
        (f"How many members did the {org} have as of {as_of}?", [p.answer("members")]),
        (f"In how many countries does the {org} have members?", [p.answer("countries")]),
        (f"Who leads the {org}?", [p.answer("leader")]),
        (f"In what year did {leader} become director of the {org}?",
         [p.answer("led"), p.answer("led", f"in {led_since}")]),
        (f"What is the annual budget of the {org}?",
         [p.answer("budget"), p.answer("budget", f"about {budget} million crowns")]),
    ]
    return org, p, questions


def event_passage(rng: random.Random) -> tuple[str, Passage, list[Question]]:
    year = rng.randint(1960, 2023)
    series = f"{rng.choice(COUNTRIES)} {rng.choice(EVENTS)}"
    event = f"{year} {series}"
    host, next_host = _cities(rng, 2)
    month = rng.choice(MONTHS)
    first_day = rng.randint(1, 20)
    visitors, teams = rng.randint(500, 90_000), rng.randint(6, 240)
    winner = " ".join(_person(rng))
    next_year = year + rng.randint(1, 4)
    p = Passage()
    p.sentence(f"The {event} was held in ", ("host", host), " from ", ("month", month),
               f" {first_day} to {month} {first_day + rng.randint(2, 8)}.")
    p.sentence("Organisers reported that about ", ("visitors", _thousands(visitors)), " visitors attended and ",
               ("teams", str(teams)), " teams took part.")
    p.sentence("The first prize went to ", ("winner", winner), f" of the {rng.choice(ORG_THEMES)} club.")
    p.sentence(f"The next {series} is planned for ", ("next_year", str(next_year)), " in ", ("next_host", next_host),
               ".")
    questions: list[Question] = [
        (f"Where was the {event} held?", [p.answer("host")]),
        (f"In which month was the {event} held?", [p.answer("month"), p.answer("month", f"{month} {first_day}")]),
        (f"How many visitors attended the {event}?",
         [p.answer("visitors"), p.answer("visitors", f"about {_thousands(visitors)}")]),
        (f"How many teams took part in the {event}?", [p.answer("teams")]),
        (f"Who won the first prize at the {event}?", [p.answer("winner")]),
        (f"Where will the next {series} be held?", [p.answer("next_host")]),
        (f"In what year is the next {series} planned?", [p.answer("next_year")]),
    ]
    return event, p, questions


def mountain_passage(rng: random.Random) -> tuple[str, Passage, list[Question]]:
    mountain = f"Mount {rng.choice(SURNAMES)}"
    mountain_range, river, sea = rng.choice(MOUNTAIN_RANGES), rng.choice(RIVERS), rng.choice(SEAS)
    height = rng.randint(1800, 8400)
    month, day, year = rng.choice(MONTHS), rng.randint(1, 28), rng.randint(1850, 1990)
    leader = " ".join(_person(rng))
    length = rng.randint(40, 1200)
    station_altitude = rng.randint(900, height - 300)
    station_since = rng.randint(year + 5, 2020)
    p = Passage()
    p.sentence(f"{mountain} is the highest peak of the ", ("range", mountain_range), " range, rising to ",
               ("height", _thousands(height)), " metres above sea level.")
    date = f"{month} {day}, {year}"
    p.sentence("It was first climbed on ", ("date", date), ", by an expedition led by ", ("leader", leader), ".")
    p.sentence("Its glaciers feed the ", ("river", river), " River, which flows ",
               ("length", f"{length} kilometres"), " to the ", ("sea", sea), ".")
    p.sentence(f"A research station at {_thousands(station_altitude)} metres has operated on the mountain since ",
               ("since", str(station_since)), ".")
    questions: list[Question] = [
        (f"How high is {mountain}?",
         [p.answer("height"), p.answer("height", f"{_thousands(height)} metres")]),
        (f"Which range is {mountain} part of?", [p.answer("range"), p.answer("range", f"the {mountain_range}")]),
        (f"When was {mountain} first climbed?", [p.answer("date"), p.answer("date", f"on {date}")]),
        (f"Who led the first expedition to climb {mountain}?", [p.answer("leader")]),
        (f"Which river do the glaciers of {mountain} feed?",
         [p.answer("river"), p.answer("river", f"the {river} River")]),
        (f"How long is the {river} River?", [p.answer("length")]),
        (f"Into which body of water does the {river} River flow?", [p.answer("sea"), p.answer("sea", f"the {sea}")]),
        (f"Since when has the research station on {mountain} operated?",
         [p.answer("since"), p.answer("since", f"since {station_since}")]),
    ]
    return mountain, p, questions


PASSAGE_TEMPLATES: tuple[Callable[[random.Random], tuple[str, Passage, list[Question]]], ...] = (
    biography_passage, city_passage, organisation_passage, event_passage, mountain_passage)


def question_id(seed: int, paragraph: int, question: int) -> str:
    """A 24-hex-digit id like SQuAD's, stable for (seed, paragraph, question)."""
    return hashlib.sha1(f"mathlora-squad:{seed}:{paragraph}:{question}".encode()).hexdigest()[:24]


def generate_squad(paragraphs: int, seed: int) -> dict:
    """A SQuAD v1.1 JSON object with ``paragraphs`` paragraphs (1-3 questions each), deterministic per seed."""
    if paragraphs < 0:
        raise MathloraError(f"paragraphs must be >= 0, got {paragraphs}")
    rng = random.Random(f"mathlora-squad:{seed}")
    articles: list[dict] = []
    for index in range(paragraphs):
        subject, passage, candidates = rng.choice(PASSAGE_TEMPLATES)(rng)
        chosen = rng.sample(candidates, rng.randint(1, 3))
        qas = [{"id": question_id(seed, index, k), "question": question, "answers": answers}
               for k, (question, answers) in enumerate(chosen)]
        if index % PARAGRAPHS_PER_ARTICLE == 0:
            articles.append({"title": subject.replace(" ", "_"), "paragraphs": []})
        articles[-1]["paragraphs"].append({"context": passage.context, "qas": qas})
    return {"version": SQUAD_VERSION, "data": articles}
