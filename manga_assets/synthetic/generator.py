"""Seeded synthetic shopper-message generator for the MangaAssist intent classifier.

Why it exists: hand-written golden/seed data is small and expensive; the training and
drift pipelines need large, *reproducible* corpora whose label mix and segment mix
(jargon, slang, code-switching, typos, ASR noise...) can be dialled up or down.  Every
segment tag on a generated row is checked against the text before the row is kept, so
downstream per-segment metrics can trust the tags.

Pure Python (standard library plus the core's label taxonomy).  All randomness flows through one local ``random.Random(seed)``
(never the global generator) and every list we draw from is an ordered tuple, so output
is identical for the same seed regardless of ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from manga_intent.labels import INTENTS
from manga_intent.labels import SEED_TRAFFIC_SHARES as _CORE_SHARES

from . import lexicon as lx

__all__ = [
    "INTENTS",
    "SEED_TRAFFIC_SHARES",
    "SEGMENTS",
    "DEFAULT_SEGMENT_MIX",
    "VOCABULARIES",
    "generate_synthetic",
    "apply_typos",
    "apply_asr_noise",
    "code_switch_jp",
    "add_romaji",
    "write_audit_sample",
    "detect_tags",
    "normalize_for_match",
    "known_vocabulary",
    "spell_number",
    "template_counts",
]

#: The taxonomy and the seed period's traffic shares (default label mix) come from the core.
SEED_TRAFFIC_SHARES: Mapping[str, float] = MappingProxyType(dict(_CORE_SHARES))

SEGMENTS: tuple[str, ...] = (
    "plain",
    "jargon",
    "slang",
    "multi_intent",
    "jp_en",
    "romaji",
    "typo",
    "voice_asr",
)

#: Independent per-message probability of each non-plain segment (SPEC.md target mix).
DEFAULT_SEGMENT_MIX: Mapping[str, float] = MappingProxyType(
    {
        "jargon": 0.22,
        "slang": 0.15,
        "multi_intent": 0.18,
        "jp_en": 0.10,
        "romaji": 0.04,
        "typo": 0.10,
        "voice_asr": 0.08,
    }
)

VOCABULARIES: tuple[str, ...] = ("train", "novel")

_DRAWN_SEGMENTS: tuple[str, ...] = SEGMENTS[1:]

# ---------------------------------------------------------------------------
# Templates.  Slots in braces; see _Filler for the slot vocabulary.  Templates are
# classified automatically (literal jargon/slang, jargon-capable slots) so a template
# that happens to contain a jargon word can only be used for jargon-tagged rows.
# Deliberately worded differently from the examples in SPEC.md so synthetic rows do
# not near-copy hand-written rows that may have started from those examples.
# ---------------------------------------------------------------------------
_TEMPLATE_TEXTS: dict[str, tuple[str, ...]] = {
    "product_discovery": (
        "What {genre} manga do you have right now?",
        "Do you stock the {title} {formats}?",
        "Are there any {genre} {formats} available at the moment?",
        "Which {genre} titles came out this month?",
        "I'm looking for {formats} by {author}. What have you got?",
        "Where do I find everything by {author_short} on your site?",
        "Can you list all the {formats} you currently sell?",
        "browse {genre} titles",
        "Do you have any {genre} manga set in {setting}?",
        "Is there a section for {formats}? I can't find it in the menu.",
        "What's new in {genre} this week?",
        "I need the complete {title} run. Do you sell it as one set?",
        "search {author_short}",
        "{genre} manga under {price}?",
        "Do you carry anything from {publisher}?",
        "What {publisher} books came out in {month}?",
        "Show me all the {title} {formats} you have.",
        "I collect {formats}. Which ones do you have in stock at the moment?",
        "Are there any {genre} titles with a female lead in your catalogue?",
        "I'm trying to find manga by {author} other than {title}. What else of theirs do you carry?",
        "Any {genre} series that are already finished? Complete runs only please.",
        "Do you have standalone {genre} manga, just one volume, nothing long?",
        "What came out this week? Looking for fresh volumes to grab.",
        "Can I filter the catalogue by {genre}? I want to see everything you have.",
        "Looking for {genre} manga for adult readers, what do you have in that area?",
        "got {title}?",
        "Do you have manga about {theme}?",
        "Anything in the catalogue about {theme} in {setting}?",
        "Are any {formats} coming out next month that I could look at?",
        "I'm hunting for {formats} of older series from the 80s and 90s. Anything like that in the shop?",
        "Is there a page with all your {genre} {formats}?",
        "My local shop never has {genre} stuff. What do you carry?",
        "New here - I want to see which {formats} you sell. Where do I start looking?",
    ),
    "product_question": (
        "Is {title} translated into English?",
        "has vol {n} of {title} been released",
        "When does {title} volume {n} come out?",
        "How many volumes of {title} are out so far?",
        "Is the {title} {format} censored at all?",
        "What's the difference between the {title} {format} and the regular volumes?",
        "How big is the {title} {format}? I need actual dimensions to know if it fits my shelf.",
        "page count for {title} vol {n}?",
        "Is {title} okay for a {age} year old? The anime looked pretty violent so I'm not sure about the manga.",
        "Is {title} volume {n} in stock?",
        "How much is the {title} {format}?",
        "Is the {publisher} translation of {title} the new one or the old one?",
        "Does the {title} {format} keep the colour pages?",
        "Are the {title} books printed right-to-left or flipped?",
        "Is {title} finished or still ongoing?",
        "Does {title} vol {n} come with the bonus postcard like the Japanese release did?",
        "Which volume of {title} does the anime stop at?",
        "is the copy of {title} you sell new or used",
        "Does {title} have furigana?",
        "What condition is the {title} {format} in? The listing just says good.",
        "Is the {title} {format} a first print?",
        "Does vol {n} of {title} include the extra chapters or were they cut?",
        "Is {title} by {author} the full story or an abridged version?",
        "Are the newer {title} volumes the same height as the old ones? My shelf looks uneven.",
        "Is the listed price for {title} vol {n} per volume or for the whole set?",
        "What age rating does {title} have?",
        "{title} vol {n} in english?",
        "Is the {title} {format} still sealed?",
        "Any idea when {title} vol {n2} will be back in stock?",
        "Does {title} have a content warning? The cover looks pretty graphic.",
        "Who translated {title}, and is it the same translator for every volume?",
        "Before I buy the {title} {format}, can you tell me whether it includes every chapter from the regular volumes, whether the paper is thicker than the standard print, and roughly how heavy it is? The product page doesn't say and I don't want to double up on anything.",
    ),
    "recommendation": (
        "Can you point me to something like {title} but with a darker tone?",
        "Just finished {title}. What should I pick up next?",
        "Is {title} actually worth reading?",
        "What would make a good gift for {person}? They love {title}.",
        "I loved {title} and {title2}. What else would I like?",
        "Recommend me a {genre} manga with a satisfying ending.",
        "I've never read manga before. Where should I start?",
        "Can you suggest something short, under ten volumes, that's {adj_pos}?",
        "{title} or {title2}, which one should I start first?",
        "Need a new {genre} series, I finished {title} and now I feel lost.",
        "What's a good {genre} manga for someone who mostly reads fantasy novels?",
        "Is {title} actually {adj_pos} or is it just hype?",
        "Someone in my family just got into {title}. What should I get them next?",
        "Looking for something cozy and wholesome to read before bed, any suggestions?",
        "Which {author_short} series is the best one to start with?",
        "I want a {genre} series that's already finished so I can binge it. What do you suggest?",
        "Any {formats} you'd recommend for someone who liked {title}?",
        "Should I read {title} or just watch the anime?",
        "I need something that'll wreck me emotionally the way {title} did.",
        "What's the best {publisher} series right now in your opinion?",
        "recs for {genre}?",
        "Thinking about starting {title}. Is it {adj_pos} from the start or does it take a while?",
        "Top {genre} picks you'd suggest for a beginner?",
        "I've got a long flight coming up. I like {genre} and anything with great art. What should I bring?",
        "Something with art as detailed as {title}?",
        "I'm burned out on {genre}. Suggest something totally different?",
        "What's a good first {format} to buy for {person}?",
        "Which newer series would you say is {adj_pos}? I fell off after {title}.",
        "Everyone says {title} is {adj_pos}. Is it too slow to get into?",
        "Was {title} {adj_neg} or did I just not give it a chance? Thinking of trying again.",
        "I want something with the same feel as {title} and {title2} - quiet, a bit sad, beautiful art.",
        "Okay, long story short: I binged {title} over the holidays, loved the art and the slow character stuff, but didn't love how the last arc dragged on. I want something with a similar mood, ideally finished and ideally under twenty volumes. What would you suggest I read next?",
    ),
    "faq": (
        "What's your policy on returns?",
        "How long does standard shipping usually take?",
        "Do you ship to {country}?",
        "How much does shipping to {country} cost?",
        "How do pre-orders work? Am I charged now or when it ships?",
        "How do I earn points with the membership program?",
        "I forgot my password, how do I reset it?",
        "What are your hours on {weekday}?",
        "Do you have a physical store I can visit?",
        "Do you price match other sites?",
        "How does gift wrapping work on your site?",
        "Can I change the email address on my account?",
        "Do your reward points expire?",
        "How do I delete my account?",
        "If I order from {country}, do I have to pay customs fees?",
        "Can I pre-order {formats} that haven't been announced in English yet?",
        "Do you buy used manga or accept trade-ins?",
        "What happens if the publisher delays a pre-order? Do I still get charged?",
        "How many days do I have to send something back?",
        "do you deliver to PO boxes",
        "Where are you located?",
        "Is there a way to get notified when something restocks?",
        "How does the membership program work? Is it free?",
        "Do you sell gift cards, and do they expire?",
        "Is my card info stored safely on your site?",
        "Which carriers do you use for international orders?",
        "Can I pick up online orders in store?",
        "How do I change the default shipping address on my account?",
        "Do you ship {formats} in boxes or padded envelopes? I'm worried about dented corners.",
        "Are you open on public holidays?",
        "Do points from the membership work on {formats} too?",
        "I live in {country}. Roughly how long would delivery take there?",
        "Do you charge a restocking fee on returns?",
        "My partner and I share one account and we keep buying the same volumes by accident. Is there a way to set up two separate wish lists or profiles under one membership, or do we each need our own account to earn points?",
    ),
    "order_tracking": (
        "Where's my order? It still hasn't shown up.",
        "Order {order_id} still says processing after {days} days.",
        "My tracking number doesn't work, can you look up {order_id}?",
        "Tracking says delivered but nothing is at my door.",
        "When will my pre-order of {title} vol {n} ship?",
        "I never got an order confirmation email.",
        "My package has been stuck in customs in {country} for a week.",
        "{carrier} hasn't updated my tracking since {weekday}. Is the order lost?",
        "Can you send me the tracking number for my last order?",
        "Has my {title} {format} shipped yet?",
        "hey where's my stuff, ordered it {days} days ago",
        "The estimated delivery date was yesterday and my order still isn't here.",
        "I placed an order on {weekday} for {title} and it still hasn't shipped. Is something wrong?",
        "Has order {order_id} left the warehouse?",
        "Tracking has said out for delivery since this morning. Will it actually come today?",
        "I ordered two things but only one box showed up. Is the rest coming separately?",
        "Why is my order taking so long?",
        "When will {order_id} arrive? I need it by {weekday}.",
        "My {carrier} tracking says returned to sender??",
        "The pre-order for the {title} {format} was supposed to ship last month. Any update?",
        "order status {order_id}",
        "Did my order go through? My card was charged but I got no email.",
        "the app says my parcel was left with a neighbour but I don't know which one",
        "Package delayed again. What's the new delivery date for {order_id}?",
        "Can you check whether my order shipped to my old address? I'm worried it did.",
        "My pre-order hasn't shipped but the release date was last week.",
        "It's been {days} days since the shipping email and tracking still shows nothing.",
        "any update on my order? it's the one with {title} in it",
        "Is my order with the {title} {format} still on track for {weekday}?",
        "{carrier} says they handed it to the local post office. What does that mean for my delivery?",
        "So I ordered {title} vol {n} and a couple of other books back on {weekday}, got the shipping email the same day, and since then the {carrier} tracking has not moved at all. It's been {days} days now. Can you tell me where order {order_id} actually is?",
    ),
    "return_request": (
        "I want to return {title} vol {n} - {defect}.",
        "Wrong volume came. I ordered vol {n} and got vol {n2}.",
        "How do I start a return for order {order_id}?",
        "{title} arrived damaged, {defect}. I'd like a refund.",
        "Can I exchange {title} vol {n} for vol {n2}?",
        "I ordered the same {format} twice by accident. Can I send one back?",
        "There's a misprint in my copy of {title}: {misprint}.",
        "I changed my mind about the {title} {format}. Can I return it unopened?",
        "What's the status of my refund? I sent back {title} {days} days ago.",
        "need to send this back, {defect}",
        "I'd like a refund for order {order_id}.",
        "The {title} {format} I received is the Japanese edition, not English. I need to return it.",
        "got two copies of vol {n}, how do I send one back",
        "My {title} {format} came with the spine cracked. A replacement or a refund is fine.",
        "I'd like to swap my {title} {format} for the standard edition.",
        "Please send me a return label for {order_id}.",
        "The gift I bought for {person} was the wrong series. Can they exchange it?",
        "You received my return a week ago but I still haven't been refunded. What's going on?",
        "I opened the shrink wrap on the {title} {format} and only then realised it's the wrong edition. Can I still return it?",
        "{title} vol {n} is missing pages. I want my money back.",
        "I want to return my whole order, {reason}.",
        "I need to return {title}, {reason}.",
        "Refund the {title} I got yesterday please, {defect}.",
        "Vol {n} of {title} came with a different cover than the one I ordered. Can I exchange it?",
        "Exchange request for {title} vol {n}: {defect}.",
        "Can you refund me for the damaged book instead of sending a replacement?",
        "I started a return for {order_id} last week. Did the package reach you?",
        "The {format} box was crushed in transit. I'd like to return the whole set.",
        "{defect} on my {title} order. how do i get a replacement",
        "I'm really disappointed. I bought the {title} {format} as a birthday present for {person}, and when we opened it {defect}. It was not cheap and the party is this weekend, so I'd like to return it and get a refund as soon as possible.",
    ),
    "promotion": (
        "Are any sales going on right now?",
        "Got a promo code I could use?",
        "Will there be a {event} sale?",
        "Do you offer a student discount?",
        "Are there any bundle deals on {formats}?",
        "Is the buy 2 get 1 free deal still running?",
        "Is {title} on sale anywhere on the site?",
        "Do you have coupons for first-time customers?",
        "When's your next big sale?",
        "Any discount if I buy the whole {title} set at once?",
        "Any free shipping offers this month?",
        "What's discounted in {genre} right now?",
        "Does the {pct}% off deal apply to {formats} too?",
        "Can I stack two promo codes?",
        "Is there a members-only discount this month?",
        "do you do {event} deals",
        "Any {publisher} titles discounted right now?",
        "I saw an ad for {pct}% off manga. Is that still on?",
        "Is there a referral code I can share with {person}?",
        "Any deals on {title}? Trying to finish my collection without going broke.",
        "Will the {title} {format} go on sale for {event}?",
        "Are you doing a back-to-school sale this year?",
        "Is there a discount for buying ten or more volumes?",
        "Do you have a clearance section with cheap volumes?",
        "What's the best deal you have today?",
        "Are {formats} ever included in the buy-2-get-1 promo?",
        "Is there a discount for signing up to the newsletter?",
        "{event} discount code?",
        "Is {code} still a valid code or has that promo ended?",
        "I'm planning to buy around fifteen volumes to finally complete {title}, so before I place the order I wanted to ask whether you have any bulk discounts, bundle pricing or upcoming sales that would make it cheaper to wait a couple of weeks.",
    ),
    "checkout_help": (
        "My payment keeps getting declined.",
        "How do I use a gift card at checkout?",
        "Checkout won't let me pay with {payment}. Is it supported?",
        "The promo code field says invalid when I enter {code}.",
        "My cart isn't updating when I change the quantity.",
        "My address won't save on the checkout page.",
        "Can I split the payment between a gift card and {payment}?",
        "I got charged twice when I checked out.",
        "The checkout page freezes right after I enter my card details.",
        "{payment} keeps timing out when I try to pay.",
        "Why does checkout say my billing address doesn't match?",
        "The place order button is greyed out and I can't click it.",
        "Checkout won't let me choose express shipping for the {title} {format}.",
        "The total at checkout is higher than what my cart showed.",
        "It says payment method not supported for {payment}.",
        "Card declined but my bank says everything is fine??",
        "I added {title} vol {n} to my cart but it disappeared when I went to check out.",
        "how do i apply my points at checkout",
        "The {code} code worked yesterday but at checkout today it says expired.",
        "Checkout keeps asking me to log in again.",
        "My gift card balance isn't showing up on the payment page.",
        "I'm stuck on the payment page. Can I check out as a guest without making an account?",
        "The verification popup from my bank never loads so I can't finish paying.",
        "Getting error {err} at checkout, what does that mean?",
        "The {payment} button is missing from the checkout page.",
        "I want to pay half with my card and half with store credit. How do I do that?",
        "Checkout says the pre-order for {title} vol {n} can't be combined with in-stock items. How do I pay for both?",
        "tax at checkout looks wrong, it's charging me {price} in tax",
        "It keeps saying my postcode is invalid when I try to pay.",
        "My gift card won't apply to the {format} in my cart.",
        "Every time I get to the last step of checkout and press pay, the page reloads and my cart is empty again, but my bank app shows a pending charge of {price}. I've tried two browsers and my phone. How do I actually complete this purchase?",
    ),
    "escalation": (
        "I want to talk to an actual human being.",
        "This chatbot is no help at all, put me through to a real person.",
        "I'd like to lodge a formal complaint.",
        "Can I speak to a manager?",
        "live agent please",
        "I've explained this three times. Transfer me to someone who can actually help.",
        "I want customer service, not a bot.",
        "Connect me with a live agent.",
        "This is ridiculous, I want this escalated.",
        "Is there a phone number where I can reach a real person?",
        "I need a supervisor, this has been going on for {days} days.",
        "You keep repeating the same answer. Person please.",
        "I want to make a formal complaint about how my order was handled.",
        "customer service rep now",
        "stop. get me a person.",
        "I'm done with this chatbot. Who do I complain to?",
        "I've waited {days} days for a reply to my email. I want to talk to someone right now.",
        "Your bot sent me in circles about the {title} {format}. I want a human.",
        "Transfer me to support staff.",
        "Let me speak with someone in charge.",
        "This is the worst customer service I've had. I'm filing a complaint.",
        "Get me an actual employee.",
        "I don't want automated answers, I want a person to look at my account.",
        "Escalate this to your management team please.",
        "Can a staff member call me back? The bot can't fix this.",
        "I've been a customer for years and this bot is making me want to leave. Put me through to a manager.",
        "Is anyone actually working there? I need to speak to a person.",
        "Nobody can tell me why my {format} pre-order was cancelled. I want a manager.",
        "I asked about {formats} three times and got nonsense back. Hand me over to a human.",
        "I have now spent forty minutes going back and forth with this chat about something that should have taken two minutes. Every answer is copy-pasted and nothing gets fixed. I want to speak with a manager or a real member of staff today, not tomorrow.",
    ),
    "chitchat": (
        "hiya!",
        "Thanks a ton!",
        "Wait, am I talking to a bot?",
        "Morning! Hope you're well.",
        "Thank you so much, that helped a lot!",
        "ok bye now",
        "Hi there, how are you today?",
        "What's your name?",
        "haha nice one",
        "Have a good night!",
        "You're pretty smart for a bot.",
        "Just finished {title} and I need a minute.",
        "Do you ever sleep?",
        "heyyy",
        "Cool, appreciate the help.",
        "Tell me a joke.",
        "Who made you?",
        "Happy {weekday}!",
        "Okay, good to know. See you later.",
        "Are you a real person or AI?",
        "Reading {title} on the train right now, wish me luck.",
        "Do you like manga?",
        "You're my favourite shop honestly.",
        "Good evening! Just saying hi.",
        "Appreciate it!",
        "That's all I needed, cheers.",
        "If you were an anime character, who would you be?",
        "I'm so hyped for the new {title} volume!!",
        "Cheers mate",
        "Nice, you're fast.",
        "I've got {formats} stacked to the ceiling in my room, send help.",
        "My cat just knocked over my whole {genre} shelf.",
        "Spent the whole weekend reading {formats}. Anyway, hello!",
        "{author_short} is a genius, that's all. Have a nice day.",
    ),
}

# Secondary-intent clauses for multi_intent rows.  "cont" clauses follow the primary
# request after a connector; chitchat clauses are whole sentences placed before/after.
_CLAUSE_TEXTS: dict[str, tuple[tuple[str, str], ...]] = {
    "product_discovery": tuple(("cont", t) for t in (
        "do you have any {genre} manga?",
        "what {formats} do you have in stock?",
        "what's new in {genre} lately?",
        "do you carry anything by {author_short}?",
        "is there a {genre} section on the site?",
        "I'm also looking for {title}, do you have it?",
        "where do I find the new releases?",
        "do you sell anything from {publisher}?",
        "show me what you've got about {theme}.",
    )),
    "product_question": tuple(("cont", t) for t in (
        "is {title} vol {n} out yet?",
        "is {title} available in English?",
        "how many volumes does {title} have?",
        "is the {title} {format} in stock?",
        "how much is {title} vol {n}?",
        "is {title} okay for a {age} year old?",
        "when is vol {n2} of {title} coming out?",
        "is the {title} {format} still sealed?",
    )),
    "recommendation": tuple(("cont", t) for t in (
        "what should I read after {title}?",
        "any suggestions for something similar to {title}?",
        "is {title} worth reading?",
        "can you recommend a good {genre} series?",
        "what would you read next if you liked {title}?",
        "got a good gift idea for {person}?",
        "which {genre} manga would you suggest right now?",
        "is {title} {adj_pos} or should I skip it?",
    )),
    "faq": tuple(("cont", t) for t in (
        "what's your return policy?",
        "how long does shipping to {country} take?",
        "do you price match?",
        "how do membership points work?",
        "are you open on {weekday}?",
        "do you ship to {country}?",
        "how does gift wrapping work?",
        "are pre-orders charged upfront or when they ship?",
    )),
    "order_tracking": tuple(("cont", t) for t in (
        "where is order {order_id}?",
        "my last order still hasn't arrived.",
        "can you check my tracking? it hasn't moved in days.",
        "when will my pre-order ship?",
        "my other package says delivered but it isn't here.",
        "any update on {order_id}?",
        "I never got a confirmation email for my last order.",
    )),
    "return_request": tuple(("cont", t) for t in (
        "I need to return {title} vol {n}, {defect}.",
        "how do I return a damaged book from my last order?",
        "I want a refund for the duplicate vol {n} I got.",
        "can I exchange the wrong volume you sent me?",
        "what's happening with the refund for my return?",
        "I want to send back the {title} {format}, {defect}.",
    )),
    "promotion": tuple(("cont", t) for t in (
        "are there any discounts right now?",
        "do you have a promo code?",
        "is anything on sale this week?",
        "will there be a {event} sale?",
        "any bundle deals on {formats}?",
        "is there a student discount?",
    )),
    "checkout_help": tuple(("cont", t) for t in (
        "my card keeps getting declined at checkout.",
        "the promo code box gives me an error when I pay.",
        "checkout won't accept {payment}, why?",
        "my address won't save at checkout.",
        "how do I use a gift card when paying?",
    )),
    "escalation": tuple(("cont", t) for t in (
        "honestly I'd rather talk to a human.",
        "if you can't sort this out, get me a real person.",
        "I want to file a formal complaint about this.",
        "can I speak to a manager about it?",
        "put me through to an agent if this is too complicated.",
    )),
    "chitchat": (
        ("pre", "Hi! Hope your day is going well."),
        ("pre", "Good morning! Happy {weekday}."),
        ("pre", "Hello hello!"),
        ("pre", "Hey, you seem nice for a bot."),
        ("post", "You're a lifesaver, thank you!"),
        ("post", "Also, are you a real person?"),
        ("post", "Have a great day!"),
        ("post", "Love this shop by the way!"),
    ),
}

# Which secondary intents read naturally after each primary.  Chitchat is never a
# primary with a secondary: "hi! where is my order" is primarily order_tracking.
_SECONDARY_OPTIONS: dict[str, tuple[str, ...]] = {
    "product_discovery": ("product_question", "recommendation", "promotion", "faq", "order_tracking", "chitchat"),
    "product_question": ("product_discovery", "promotion", "faq", "recommendation", "checkout_help", "chitchat"),
    "recommendation": ("product_discovery", "promotion", "product_question", "faq", "chitchat"),
    "faq": ("product_discovery", "promotion", "order_tracking", "product_question", "chitchat"),
    "order_tracking": ("return_request", "escalation", "faq", "product_discovery", "promotion", "chitchat"),
    "return_request": ("product_discovery", "order_tracking", "escalation", "recommendation", "faq", "chitchat"),
    "promotion": ("product_discovery", "checkout_help", "faq", "recommendation", "chitchat"),
    "checkout_help": ("promotion", "escalation", "faq", "order_tracking", "chitchat"),
    "escalation": ("order_tracking", "return_request", "checkout_help", "faq"),
    "chitchat": (),
}

_SENTENCE_CONNECTORS = ("Also, ", "Oh and ", "And ", "One more thing: ", "While I'm here, ", "Separate question: ", "Plus ")
_INLINE_CONNECTORS = (", also ", " and ", " - also ", "; plus ", ", and while I'm at it ")
_DECOR_PREFIXES = ("Excuse me, ", "Quick question: ", "Sorry to bother you, but ", "Um, ", "Okay so ", "Question: ", "Hopefully a simple one: ", "So, ")
_DECOR_SENTENCE_SUFFIXES = (" Please help.", " ASAP please.", " Any help appreciated.", " Would appreciate a quick answer.")
_DECOR_INLINE_SUFFIXES = (" please", " when you get a chance", " if possible", " asap")
_PLAIN_ADJ_POS = ("great", "really good", "amazing", "worth it", "incredible", "beautiful", "excellent")
_PLAIN_ADJ_NEG = ("boring", "disappointing", "overrated", "too slow", "forgettable")
_DAYS = ("2", "3", "4", "5", "6", "8", "10", "12", "14", "three", "four", "five", "ten", "eleven")
_PRICES = (5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100)
_PCTS = (10, 15, 20, 25, 30, 40, 50)
_ASR_FILLERS = ("um ", "uh ", "so um ", "okay ")
_ASR_EXTRA_WORDS = ("dollars", "percent", "number", "plus", "and", "volume")

_J_SLOTS = frozenset({"genre", "format", "formats", "a_format"})
_J_ONLY_SLOTS = frozenset({"publisher"})
_SLOT_RE = re.compile(r"\{(\w+)\}")
_KNOWN_SLOTS = frozenset(
    {
        "title", "title2", "author", "author_short", "n", "n2", "genre", "format",
        "formats", "a_format", "publisher", "adj_pos", "adj_neg", "order_id", "days",
        "payment", "carrier", "country", "event", "person", "age", "defect", "misprint",
        "reason", "weekday", "month", "price", "pct", "code", "err", "setting", "theme",
    }
)

# ---------------------------------------------------------------------------
# Normalisation and detection (the ground truth behind every segment tag).
# ---------------------------------------------------------------------------
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS = _ONES + _TENS[2:] + ("oh", "hundred")
_JAPANESE_RE = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_ASR_PUNCT_RE = re.compile(r"[^\w\s]|_")


def spell_number(digits: str) -> str:
    """Spell a digit string the way a speech recogniser transcribes it.

    1-3 digit numbers become words ("105" -> "one oh five", "12" -> "twelve"); longer
    strings such as order numbers are read digit by digit.  Shared by the ASR noise and
    by ``normalize_for_match`` so spoken and written forms compare equal.
    """
    if not digits.isdigit():
        raise ValueError(f"spell_number expects ASCII digits, got {digits!r}")
    if len(digits) > 3 or (len(digits) > 1 and digits[0] == "0"):
        return " ".join("oh" if d == "0" else _ONES[int(d)] for d in digits)
    n = int(digits)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    hundreds, rest = divmod(n, 100)
    if rest == 0:
        return _ONES[hundreds] + " hundred"
    if rest < 10:
        return f"{_ONES[hundreds]} oh {_ONES[rest]}"
    return f"{_ONES[hundreds]} {spell_number(str(rest))}"


def _strip_latin_diacritics(text: str) -> str:
    """Drop accents/macrons from Latin letters only (Japanese kana keep their dakuten)."""
    out = []
    for ch in text:
        if 127 < ord(ch) < 0x250:
            ch = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append(ch)
    return "".join(out)


def normalize_for_match(text: str) -> str:
    """Canonical Latin form used for all term matching.

    Lower-cases, strips macrons (tankōbon == tankobon), drops apostrophes, turns
    '&' into 'and' and digits into spoken words, and reduces everything else
    (punctuation, Japanese script) to single spaces.  Written text and its ASR
    rendering therefore normalise to the same string.
    """
    t = _strip_latin_diacritics(text.lower()).replace("&", " and ")
    t = re.sub(r"['’`]", "", t)
    t = re.sub(r"\d+", lambda m: f" {spell_number(m.group())} ", t)
    t = re.sub(r"[^a-z]+", " ", t)
    return " ".join(t.split())


def _terms(strings: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({normalize_for_match(s) for s in strings} - {""}, key=lambda s: (-len(s), s)))


_JARGON_TERMS = _terms(lx.JARGON)
_SLANG_TERMS = _terms(lx.SLANG)
_NOVEL_SLANG_TERMS = _terms(lx.NOVEL_SLANG)
_ROMAJI_TERMS = _terms(lx.ROMAJI)
_TITLE_TERMS = _terms(t for t, _ in lx.TITLES)
_NOVEL_TITLE_TERMS = _terms(t for t, _ in lx.NOVEL_TITLES)


def _find(padded_norm: str, terms: Sequence[str]) -> list[str]:
    return [t for t in terms if f" {t} " in padded_norm]


class _Analysis(NamedTuple):
    jargon: list[str]
    slang: list[str]
    novel_slang: list[str]
    romaji: list[str]
    titles: list[str]
    novel_titles: list[str]
    japanese: bool
    unknown: list[str]
    asr_like: bool


def _analyse(text: str) -> _Analysis:
    norm = normalize_for_match(text)
    padded = f" {norm} "
    vocab = known_vocabulary()
    return _Analysis(
        jargon=_find(padded, _JARGON_TERMS),
        slang=_find(padded, _SLANG_TERMS),
        novel_slang=_find(padded, _NOVEL_SLANG_TERMS),
        romaji=_find(padded, _ROMAJI_TERMS),
        titles=_find(padded, _TITLE_TERMS),
        novel_titles=_find(padded, _NOVEL_TITLE_TERMS),
        japanese=bool(_JAPANESE_RE.search(text)),
        unknown=[w for w in norm.split() if w not in vocab],
        asr_like=text == text.lower() and not _ASR_PUNCT_RE.search(text),
    )


def detect_tags(text: str, vocabulary: str = "train") -> set[str]:
    """Return the text-verifiable segment tags a message actually exhibits.

    Covers jargon, slang (from the given vocabulary's slang list), jp_en, romaji,
    typo (a token outside the generator's known vocabulary) and voice_asr (all
    lower-case, no punctuation).  multi_intent is structural and not detectable.
    """
    _check_vocabulary(vocabulary)
    a = _analyse(text)
    tags = set()
    if a.jargon:
        tags.add("jargon")
    if (a.slang if vocabulary == "train" else a.novel_slang):
        tags.add("slang")
    if a.japanese:
        tags.add("jp_en")
    if a.romaji:
        tags.add("romaji")
    if a.unknown:
        tags.add("typo")
    if a.asr_like:
        tags.add("voice_asr")
    return tags


def _iter_strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _iter_strings(k)
            yield from _iter_strings(v)
    elif isinstance(obj, (tuple, list, frozenset, set)):
        for item in obj:
            yield from _iter_strings(item)


@lru_cache(maxsize=1)
def known_vocabulary() -> frozenset[str]:
    """Every normalised token the generator can emit *without* a typo.

    Built from all lexicon lists (except typo targets), templates, clauses, fillers,
    ASR outputs and number words.  A token outside this set is, by construction, a
    typo - that is how typo tags are verified.
    """
    sources: list[Any] = []
    for name, value in vars(lx).items():
        if name.startswith("_") or name in ("COMMON_TYPOS", "KEYBOARD_NEIGHBOURS"):
            continue
        sources.append(value)
    sources.append([correct for correct, _ in lx.COMMON_TYPOS])
    sources.extend(
        [
            _TEMPLATE_TEXTS, _CLAUSE_TEXTS, _SENTENCE_CONNECTORS, _INLINE_CONNECTORS,
            _DECOR_PREFIXES, _DECOR_SENTENCE_SUFFIXES, _DECOR_INLINE_SUFFIXES,
            _PLAIN_ADJ_POS, _PLAIN_ADJ_NEG, _DAYS, _ASR_FILLERS, _ASR_EXTRA_WORDS,
            _NUMBER_WORDS, ("ma",),
        ]
    )
    vocab: set[str] = set()
    for s in _iter_strings(sources):
        vocab.update(normalize_for_match(s).split())
    return frozenset(vocab)


# ---------------------------------------------------------------------------
# Noise functions (usable on their own, e.g. to perturb hand-written rows).
# ---------------------------------------------------------------------------
_TYPO_MAP = dict(lx.COMMON_TYPOS)
_NEIGHBOURS = dict(lx.KEYBOARD_NEIGHBOURS)
_WORD_RE = re.compile(r"[A-Za-z]+")


def _match_case(new: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return new.upper()
    if like[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _typo_word(word: str, rng: random.Random) -> str | None:
    """A misspelling of ``word`` that is not itself a known word, or None."""
    vocab = known_vocabulary()
    lower = word.lower()
    if lower in _TYPO_MAP and rng.random() < 0.6:
        cand = _match_case(_TYPO_MAP[lower], word)
        if normalize_for_match(cand) not in vocab:
            return cand
    if len(word) < 4:
        return None
    for _ in range(8):
        i = rng.randrange(1, len(word))  # keep the first letter: typos rarely hit it
        op = rng.choice(("delete", "swap", "double", "neighbour"))
        if op == "delete":
            cand = word[:i] + word[i + 1:]
        elif op == "swap" and i < len(word) - 1:
            cand = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        elif op == "double":
            cand = word[:i] + word[i] + word[i:]
        else:
            near = _NEIGHBOURS.get(word[i].lower())
            if not near:
                continue
            repl = rng.choice(near)
            cand = word[:i] + (repl.upper() if word[i].isupper() else repl) + word[i + 1:]
        if cand != word and normalize_for_match(cand) not in vocab:
            return cand
    return None


def apply_typos(text: str, rng: random.Random, rate: float = 0.12, *, protect: Iterable[str] = ()) -> str:
    """Misspell roughly ``rate`` of the eligible words (at least one when possible).

    Uses common real-world misspellings first, then keyboard slips (drop, swap,
    double, neighbouring key).  Produced tokens are never real words from the
    generator's vocabulary, so the typo stays detectable.  Words whose normalised
    form is in ``protect`` (e.g. the jargon term that justifies a jargon tag) are
    left alone.
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    protected = {normalize_for_match(p) for p in protect}
    protected_tokens = {tok for p in protected for tok in p.split()}
    matches = [
        m for m in _WORD_RE.finditer(text)
        if (len(m.group()) >= 4 or m.group().lower() in _TYPO_MAP)
        and m.group().lower() not in protected_tokens
    ]
    if not matches:
        return text
    k = max(1, round(rate * len(matches)))
    order = list(range(len(matches)))
    rng.shuffle(order)
    chosen: dict[int, str] = {}
    for idx in order:
        if len(chosen) >= k:
            break
        new = _typo_word(matches[idx].group(), rng)
        if new is not None:
            chosen[idx] = new
    out = text
    for idx in sorted(chosen, reverse=True):
        m = matches[idx]
        out = out[: m.start()] + chosen[idx] + out[m.end():]
    return out


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])")


_ASR_PATTERNS = tuple((src, dst, _phrase_pattern(src), set(normalize_for_match(src).split())) for src, dst in lx.ASR_CONFUSIONS)


def apply_asr_noise(text: str, rng: random.Random, *, protect: Iterable[str] = ()) -> str:
    """Render ``text`` the way a speech recogniser would transcribe it.

    Lower-case, no punctuation, numbers spoken ("vol 105" -> "volume one oh five"),
    symbols spoken ("$20" -> "twenty dollars"), and homophones / misheard titles
    ("where" -> "wear", "One Piece" -> "won piece") applied with some probability.
    Japanese script is kept (it has no case) but its punctuation is removed.
    """
    protected_tokens = {tok for p in protect for tok in normalize_for_match(p).split()}
    t = re.sub(r"\$(\d+)", r"\1 dollars", text)
    t = t.replace("%", " percent").replace("&", " and ").replace("#", " number ").replace("+", " plus ")
    t = _strip_latin_diacritics(t.lower())
    t = re.sub(r"(?<![a-z])vol\.?(?![a-z])", "volume", t)
    for _src, dst, pattern, src_tokens in _ASR_PATTERNS:
        if src_tokens & protected_tokens:
            continue
        if pattern.search(t) and rng.random() < 0.55:
            t = pattern.sub(dst, t)
    t = re.sub(r"\d+", lambda m: f" {spell_number(m.group())} ", t)
    t = re.sub(r"['’`]", "", t)
    t = _ASR_PUNCT_RE.sub(" ", t)
    t = " ".join(t.split())
    if rng.random() < 0.12:
        t = rng.choice(_ASR_FILLERS) + t
    return t


@lru_cache(maxsize=1)
def _common_starters() -> frozenset[str]:
    """First words of templates/decorations that start with literal text (not a slot).

    Only these are lower-cased after a prefix; a leading title or name keeps its case.
    """
    starters = set()
    for text in _iter_strings([_TEMPLATE_TEXTS, _CLAUSE_TEXTS, _DECOR_PREFIXES]):
        first = text.split(" ", 1)[0]
        if first[:1].isalpha() and first not in ("I", "I'm", "I've", "I'd", "I'll"):
            starters.add(first.rstrip(",:").lower())
    return frozenset(starters)


def _decap(text: str) -> str:
    """Lower-case a leading common word so a prefix can precede it ("ngl where is...")."""
    first = text.split(" ", 1)[0].rstrip(",:")
    if first.lower() in _common_starters() and not (len(first) > 1 and first.isupper()):
        return text[0].lower() + text[1:]
    return text


def _sub_first_word(text: str, rng: random.Random, pairs: Sequence[tuple[str, str]], protected_tokens: set[str]) -> str | None:
    """Replace one randomly chosen substitutable English word/phrase, or None."""
    options = []
    for eng, repl in pairs:
        if set(normalize_for_match(eng).split()) & protected_tokens:
            continue
        m = re.search(r"(?<![A-Za-z])" + re.escape(eng) + r"(?![A-Za-z])", text, flags=re.IGNORECASE)
        if m:
            options.append((m, repl))
    if not options:
        return None
    m, repl = rng.choice(options)
    return text[: m.start()] + repl + text[m.end():]


def _intent_phrases(table: Sequence[tuple[str, tuple[str, ...]]], intent: str | None) -> tuple[str, ...]:
    if intent is None:
        return ()
    for name, phrases in table:
        if name == intent:
            return phrases
    raise ValueError(f"unknown intent {intent!r}; expected one of {', '.join(INTENTS)}")


def code_switch_jp(text: str, rng: random.Random, *, intent: str | None = None, protect: Iterable[str] = ()) -> str:
    """Mix Japanese script into an English message without changing its intent.

    Swaps a word for its Japanese equivalent (manga -> 漫画, order -> 注文), adds a
    polite Japanese opener/closer, or - when ``intent`` is given - a short Japanese
    sentence with the same intent ("返品したいです。").  Always adds Japanese script.
    """
    protected_tokens = {tok for p in protect for tok in normalize_for_match(p).split()}
    ops = ["sub", "prefix", "suffix"] + (["intent", "intent"] if intent else [])
    for _ in range(2 if rng.random() < 0.25 else 1):
        op = rng.choice(ops)
        ops = [o for o in ops if o != op]  # a second change is always of another kind
        new = None
        if op == "sub":
            new = _sub_first_word(text, rng, lx.JP_WORD_SUBS, protected_tokens)
        elif op == "prefix":
            new = rng.choice(lx.JP_PREFIXES) + text
        elif op == "intent":
            phrase = rng.choice(_intent_phrases(lx.JP_INTENT_PHRASES, intent))
            new = f"{phrase} {text}" if rng.random() < 0.4 else f"{text} {phrase}"
        if new is None:  # "suffix", or a substitution that found nothing
            new = text + rng.choice(lx.JP_SUFFIXES)
        text = new
    if not _JAPANESE_RE.search(text):
        text += rng.choice(lx.JP_SUFFIXES)
    return text


def add_romaji(text: str, rng: random.Random, *, intent: str | None = None, protect: Iterable[str] = ()) -> str:
    """Add romanised Japanese ("sumimasen", "kawaii", "kore wa eigo desu ka?").

    Substitutes an English word (please -> onegai, amazing -> sugoi), prefixes or
    suffixes a romaji interjection, or appends a same-intent romaji phrase.  Always
    leaves at least one term from ``lexicon.ROMAJI`` in the text.
    """
    protected_tokens = {tok for p in protect for tok in normalize_for_match(p).split()}
    op = rng.choice(["sub", "prefix", "suffix"] + (["intent"] if intent else []))
    new = None
    if op == "sub":
        new = _sub_first_word(text, rng, lx.ROMAJI_WORD_SUBS, protected_tokens)
    elif op == "prefix":
        new = f"{rng.choice(lx.ROMAJI_PREFIXES)} {_decap(text)}"
    elif op == "intent":
        new = f"{text} {rng.choice(_intent_phrases(lx.ROMAJI_INTENT_PHRASES, intent))}"
    if new is None:
        new = f"{text} {rng.choice(lx.ROMAJI_SUFFIXES)}"
    if not _find(f" {normalize_for_match(new)} ", _ROMAJI_TERMS):
        new = f"{new} {rng.choice(lx.ROMAJI_SUFFIXES)}"
    return new


# ---------------------------------------------------------------------------
# Template bookkeeping.
# ---------------------------------------------------------------------------
class _Template(NamedTuple):
    id: str
    text: str
    position: str  # "main" (primary); clauses: "cont" (joined by a connector) or "pre"/"post" (whole sentence)
    jargon_literal: bool
    jargon_slots: bool
    jargon_only_slot: bool
    train_slang_literal: bool
    novel_slang_literal: bool
    formal: bool


def _make_template(tid: str, text: str, position: str) -> _Template:
    slots = set(_SLOT_RE.findall(text))
    unknown = slots - _KNOWN_SLOTS
    if unknown:
        raise RuntimeError(f"template {tid} uses unknown slot(s) {sorted(unknown)}")
    bare = _SLOT_RE.sub(" ", text)
    padded = f" {normalize_for_match(bare)} "
    if _JAPANESE_RE.search(bare) or _find(padded, _ROMAJI_TERMS):
        raise RuntimeError(f"template {tid} must not contain Japanese or romaji literally")
    return _Template(
        id=tid,
        text=text,
        position=position,
        jargon_literal=bool(_find(padded, _JARGON_TERMS)),
        jargon_slots=bool(slots & _J_SLOTS),
        jargon_only_slot=bool(slots & _J_ONLY_SLOTS),
        train_slang_literal=bool(_find(padded, _SLANG_TERMS)),
        novel_slang_literal=bool(_find(padded, _NOVEL_SLANG_TERMS)),
        formal=any(c.isupper() for c in bare),
    )


_TEMPLATES: dict[str, tuple[_Template, ...]] = {
    intent: tuple(_make_template(f"{intent}.{i:02d}", t, "main") for i, t in enumerate(texts, 1))
    for intent, texts in _TEMPLATE_TEXTS.items()
}
_CLAUSES: dict[str, tuple[_Template, ...]] = {
    intent: tuple(_make_template(f"{intent}.s{i:02d}", t, pos) for i, (pos, t) in enumerate(items, 1))
    for intent, items in _CLAUSE_TEXTS.items()
}


def template_counts() -> dict[str, dict[str, int]]:
    """Number of primary templates and secondary clauses per intent (for reports)."""
    return {i: {"templates": len(_TEMPLATES[i]), "secondary_clauses": len(_CLAUSES[i])} for i in INTENTS}


def _eligible(templates: Sequence[_Template], *, jargon: bool, slang: bool, vocabulary: str, primary: bool) -> tuple[_Template, ...]:
    out = []
    for t in templates:
        if t.jargon_only_slot and not jargon:
            continue
        if t.jargon_literal and not jargon:
            continue
        if primary and jargon and not (t.jargon_literal or t.jargon_slots or t.jargon_only_slot):
            continue
        if (t.train_slang_literal or t.novel_slang_literal) and not slang:
            continue
        if vocabulary == "train" and t.novel_slang_literal:
            continue
        if vocabulary == "novel" and t.train_slang_literal:
            continue
        out.append(t)
    return tuple(out)


@lru_cache(maxsize=None)
def _eligible_cached(intent: str, kind: str, jargon: bool, slang: bool, vocabulary: str) -> tuple[_Template, ...]:
    pool = _TEMPLATES[intent] if kind == "main" else _CLAUSES[intent]
    return _eligible(pool, jargon=jargon, slang=slang, vocabulary=vocabulary, primary=kind == "main")


class _Lex(NamedTuple):
    name: str
    titles: tuple[tuple[str, str], ...]
    slang_prefixes: tuple[str, ...]
    slang_suffixes: tuple[str, ...]
    slang_adj_pos: tuple[str, ...]
    slang_adj_neg: tuple[str, ...]


_LEXES = {
    "train": _Lex("train", lx.TITLES, lx.SLANG_PREFIXES, lx.SLANG_SUFFIXES, lx.SLANG_ADJ_POS, lx.SLANG_ADJ_NEG),
    "novel": _Lex(
        "novel", lx.NOVEL_TITLES, lx.NOVEL_SLANG_PREFIXES, lx.NOVEL_SLANG_SUFFIXES,
        lx.NOVEL_SLANG_ADJ_POS, lx.NOVEL_SLANG_ADJ_NEG,
    ),
}


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" and not phrase.lower().startswith(("uni", "one")) else "a"


def _order_id(rng: random.Random) -> str:
    while True:  # "67" would read as the novel slang "6-7" once spelled out
        style = rng.randrange(3)
        if style == 0:
            oid = f"#{rng.randint(100000, 999999)}"
        elif style == 1:
            oid = f"MA-{rng.randint(10000, 99999)}"
        else:
            oid = str(rng.randint(1000000, 9999999))
        if "67" not in oid:
            return oid


class _Filler:
    """Fills slots for one message; the same slot name gets the same value throughout."""

    def __init__(self, rng: random.Random, lex: _Lex, *, jargon: bool, slang: bool) -> None:
        self.rng, self.lex, self.jargon, self.slang = rng, lex, jargon, slang
        self.entry = rng.choice(lex.titles)
        self.entry2 = rng.choice([e for e in lex.titles if e != self.entry])
        self.values: dict[str, str] = {}

    def _value(self, name: str) -> str:
        rng = self.rng
        if name == "title":
            return self.entry[0]
        if name == "title2":
            return self.entry2[0]
        if name == "author":
            return self.entry[1]
        if name == "author_short":
            return self.entry[1].split(" & ")[0].split(" ")[-1]
        if name == "n":
            return str(rng.randint(1, 30))
        if name == "n2":
            first = int(self.values.setdefault("n", str(rng.randint(1, 30))))
            return str(first + rng.randint(1, 5))
        if name == "publisher":
            return rng.choice(lx.PUBLISHERS)
        if name == "adj_pos":
            return rng.choice(self.lex.slang_adj_pos if self.slang and rng.random() < 0.85 else _PLAIN_ADJ_POS)
        if name == "adj_neg":
            return rng.choice(self.lex.slang_adj_neg if self.slang and rng.random() < 0.85 else _PLAIN_ADJ_NEG)
        if name == "order_id":
            return _order_id(rng)
        if name == "days":
            return rng.choice(_DAYS)
        if name == "age":
            return str(rng.randint(8, 16))
        if name == "price":
            return f"${rng.choice(_PRICES)}"
        if name == "pct":
            return str(rng.choice(_PCTS))
        table = {
            "payment": lx.PAYMENTS, "carrier": lx.CARRIERS, "country": lx.COUNTRIES,
            "event": lx.EVENTS, "person": lx.PERSONS, "defect": lx.DEFECTS,
            "misprint": lx.MISPRINTS, "reason": lx.RETURN_REASONS, "weekday": lx.WEEKDAYS,
            "month": lx.MONTHS, "code": lx.PROMO_CODES, "err": lx.ERROR_CODES,
            "setting": lx.SETTINGS, "theme": lx.THEMES,
        }
        return rng.choice(table[name])

    def _jargon_value(self, name: str, use_jargon: bool) -> str:
        rng = self.rng
        if name == "genre":
            return rng.choice(lx.GENRES_JARGON if use_jargon else lx.GENRES_PLAIN)
        if name == "formats" and use_jargon and rng.random() < 0.35:
            return rng.choice(lx.CATEGORIES_JARGON)
        singular, plural = rng.choice(lx.FORMATS_JARGON if use_jargon else lx.FORMATS_PLAIN)
        if name == "format":
            return singular
        if name == "formats":
            return plural
        return f"{_article(singular)} {singular}"  # a_format

    def fill(self, template: _Template, *, force_jargon: bool) -> str:
        j_matches = [m for m in _SLOT_RE.finditer(template.text) if m.group(1) in _J_SLOTS]
        forced = self.rng.randrange(len(j_matches)) if (force_jargon and j_matches) else -1
        counter = iter(range(len(j_matches)))

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in _J_SLOTS:
                idx = next(counter)
                use = self.jargon and (idx == forced or self.rng.random() < 0.35)
                return self._jargon_value(name, use)
            if name not in self.values:
                self.values[name] = self._value(name)
            return self.values[name]

        text = _SLOT_RE.sub(repl, template.text)
        text = re.sub(r"\b[Tt]he (?=The )", "", text)  # "the {title}" with "The Promised Neverland"
        if template.formal and template.position != "cont" and text[:1].islower():
            text = text[0].upper() + text[1:]
        return text


# ---------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------
def _check_vocabulary(vocabulary: str) -> str:
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}")
    return vocabulary


def _check_probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} = {value!r} is outside [0, 1]")
    return value


def _validate_segment_mix(segment_mix: Mapping[str, float] | None) -> dict[str, float]:
    if segment_mix is None:
        return dict(DEFAULT_SEGMENT_MIX)
    if not isinstance(segment_mix, Mapping):
        raise ValueError(f"segment_mix must be a mapping of segment -> probability, got {type(segment_mix).__name__}")
    if "plain" in segment_mix:
        raise ValueError("segment_mix: 'plain' cannot be drawn; it is assigned when no other segment applies")
    unknown = sorted(set(segment_mix) - set(_DRAWN_SEGMENTS), key=str)
    if unknown:
        raise ValueError(f"segment_mix: unknown segment(s) {unknown}; allowed: {', '.join(_DRAWN_SEGMENTS)}")
    return {s: _check_probability(f"segment_mix[{s!r}]", segment_mix.get(s, 0.0)) for s in _DRAWN_SEGMENTS}


def _validate_intent_shares(intent_shares: Mapping[str, float] | None) -> dict[str, float]:
    if intent_shares is None:
        return dict(SEED_TRAFFIC_SHARES)
    if not isinstance(intent_shares, Mapping):
        raise ValueError(f"intent_shares must be a mapping of intent -> share, got {type(intent_shares).__name__}")
    unknown = sorted(set(intent_shares) - set(INTENTS), key=str)
    if unknown:
        raise ValueError(f"intent_shares: unknown intent(s) {unknown}; allowed: {', '.join(INTENTS)}")
    shares = {i: _check_probability(f"intent_shares[{i!r}]", intent_shares.get(i, 0.0)) for i in INTENTS}
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"intent_shares must sum to 1 (within 0.001), got {total:.6f}")
    return shares


def _quota(shares: Mapping[str, float], n: int) -> list[str]:
    """Largest-remainder allocation: label counts match the shares as exactly as n allows."""
    raw = {i: shares[i] * n for i in INTENTS}
    counts = {i: int(math.floor(raw[i])) for i in INTENTS}
    leftover = n - sum(counts.values())
    for i in sorted(INTENTS, key=lambda i: (-(raw[i] - counts[i]), INTENTS.index(i)))[:leftover]:
        counts[i] += 1
    return [i for i in INTENTS for _ in range(counts[i])]


# ---------------------------------------------------------------------------
# Composition.
# ---------------------------------------------------------------------------
def _protect_terms(text: str) -> list[str]:
    padded = f" {normalize_for_match(text)} "
    return _find(padded, _JARGON_TERMS) + _find(padded, _SLANG_TERMS) + _find(padded, _NOVEL_SLANG_TERMS) + _find(padded, _ROMAJI_TERMS)


def _add_slang_marker(text: str, rng: random.Random, lex: _Lex) -> str:
    if rng.random() < 0.45:
        return f"{rng.choice(lex.slang_prefixes)} {_decap(text)}"
    base = text[:-1] if text.endswith(".") else text
    return f"{base} {rng.choice(lex.slang_suffixes)}"


def _join_clause(primary: str, clause: str, position: str, rng: random.Random) -> str:
    if position == "pre":  # whole sentences (chitchat) before or after the request
        return f"{clause} {primary}"
    if position == "post":
        return f"{primary} {clause}" if primary[-1:] in ".?!" else f"{primary}. {clause}"
    if primary[-1:] in ".?!":
        return f"{primary} {rng.choice(_SENTENCE_CONNECTORS)}{clause}"
    return f"{primary}{rng.choice(_INLINE_CONNECTORS)}{clause}"


def _decorate(text: str, rng: random.Random) -> str:
    """Politeness/urgency wrappers; never greetings or thanks (those are chitchat)."""
    if rng.random() < 0.22:
        text = rng.choice(_DECOR_PREFIXES) + _decap(text)
    if rng.random() < 0.18:
        text += rng.choice(_DECOR_SENTENCE_SUFFIXES if text[-1:] in ".?!" else _DECOR_INLINE_SUFFIXES)
    return text


def _verify(text: str, segments: set[str], vocabulary: str) -> bool:
    """Keep a row only if every tag is true of the text and no absent tag is."""
    a = _analyse(text)
    if bool(a.jargon) != ("jargon" in segments):
        return False
    own_slang, other_slang = (a.slang, a.novel_slang) if vocabulary == "train" else (a.novel_slang, a.slang)
    if bool(own_slang) != ("slang" in segments) or other_slang:
        return False
    if (a.novel_titles if vocabulary == "train" else a.titles):
        return False
    if a.japanese != ("jp_en" in segments):
        return False
    if bool(a.romaji) != ("romaji" in segments):
        return False
    if bool(a.unknown) != ("typo" in segments):
        return False
    if "voice_asr" in segments and not a.asr_like:
        return False
    return True


def _compose(label: str, segments: set[str], rng: random.Random, lex: _Lex) -> tuple[str, str | None, str] | None:
    """One candidate (text, secondary, template_id), or None if a tag did not hold."""
    jargon, slang = "jargon" in segments, "slang" in segments
    filler = _Filler(rng, lex, jargon=jargon, slang=slang)
    template = rng.choice(_eligible_cached(label, "main", jargon, slang, lex.name))
    text = filler.fill(template, force_jargon=jargon and not (template.jargon_literal or template.jargon_only_slot))
    template_id = template.id
    secondary = None
    if "multi_intent" in segments:
        secondary = rng.choice(_SECONDARY_OPTIONS[label])
        clause = rng.choice(_eligible_cached(secondary, "clause", jargon, slang, lex.name))
        clause_filler = _Filler(rng, lex, jargon=jargon, slang=slang)  # fresh title/values
        text = _join_clause(text, clause_filler.fill(clause, force_jargon=False), clause.position, rng)
        template_id += "+" + clause.id
    if slang:
        has_slang = bool(_find(f" {normalize_for_match(text)} ", _SLANG_TERMS if lex.name == "train" else _NOVEL_SLANG_TERMS))
        if not has_slang or rng.random() < 0.35:
            text = _add_slang_marker(text, rng, lex)
    if label != "chitchat":
        text = _decorate(text, rng)
    if rng.random() < 0.15:  # sloppy mobile typing
        text = text.lower()
    if "romaji" in segments:
        text = add_romaji(text, rng, intent=label, protect=_protect_terms(text))
    if "jp_en" in segments:
        text = code_switch_jp(text, rng, intent=label, protect=_protect_terms(text))
    if "voice_asr" in segments:
        text = apply_asr_noise(text, rng, protect=_protect_terms(text))
    if "typo" in segments:
        text = apply_typos(text, rng, rate=rng.choice((0.08, 0.12, 0.2)), protect=_protect_terms(text))
    text = " ".join(text.split())
    if not _verify(text, segments, lex.name):
        return None
    return text, secondary, template_id


_MAX_TEXT_ATTEMPTS = 60
_MAX_SEGMENT_REDRAWS = 20


def generate_synthetic(
    n: int,
    *,
    seed: int,
    segment_mix: Mapping[str, float] | None = None,
    intent_shares: Mapping[str, float] | None = None,
    vocabulary: str = "train",
) -> list[dict]:
    """Generate ``n`` unique labelled shopper messages, deterministically for ``seed``.

    Labels follow ``intent_shares`` (default ``SEED_TRAFFIC_SHARES``) by exact quota,
    shuffled.  Each non-plain segment is an independent draw with its
    ``segment_mix`` probability (default ``DEFAULT_SEGMENT_MIX``; a given mapping is
    the complete mix - missing segments get 0).  Chitchat never carries a secondary
    intent, so the multi_intent probability is rescaled over the other intents to keep
    the overall share on target.  ``vocabulary="novel"`` draws titles and slang only
    from ``NOVEL_TITLES`` / ``NOVEL_SLANG`` (drift scenario).

    Returns dicts ``{"text", "label", "secondary", "segment", "source", "template_id"}``.
    Raises ValueError on invalid arguments or when ``n`` unique texts cannot be found.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    mix = _validate_segment_mix(segment_mix)
    shares = _validate_intent_shares(intent_shares)
    lex = _LEXES[_check_vocabulary(vocabulary)]

    multi_eligible_share = 1.0 - shares["chitchat"]
    p_multi = mix["multi_intent"]
    if p_multi > 0:
        if multi_eligible_share <= 0 or p_multi / multi_eligible_share > 1.0 + 1e-9:
            raise ValueError(
                f"segment_mix['multi_intent'] = {p_multi} cannot be met: chitchat never has a secondary "
                f"intent and only {multi_eligible_share:.3f} of intent_shares is non-chitchat"
            )
        p_multi_eff = min(1.0, p_multi / multi_eligible_share)
    else:
        p_multi_eff = 0.0

    rng = random.Random(seed)
    labels = _quota(shares, n)
    rng.shuffle(labels)

    def draw_segments(label: str) -> set[str]:
        drawn = set()
        for seg in _DRAWN_SEGMENTS:
            p = mix[seg]
            if seg == "multi_intent":
                p = 0.0 if label == "chitchat" else p_multi_eff
            if rng.random() < p:
                drawn.add(seg)
        return drawn

    rows: list[dict] = []
    seen: set[str] = set()
    for label in labels:
        row = None
        for _ in range(_MAX_SEGMENT_REDRAWS):
            segments = draw_segments(label)
            for _ in range(_MAX_TEXT_ATTEMPTS):
                cand = _compose(label, segments, rng, lex)
                if cand is None:
                    continue
                key = " ".join(cand[0].lower().split())
                if key in seen:
                    continue
                seen.add(key)
                text, secondary, template_id = cand
                row = {
                    "text": text,
                    "label": label,
                    "secondary": secondary,
                    "segment": [s for s in SEGMENTS if s in segments] or ["plain"],
                    "source": "synthetic",
                    "template_id": template_id,
                }
                break
            if row is not None:
                break
        if row is None:
            raise ValueError(
                f"could not generate {n} unique texts: after {len(rows)} rows, no new unique "
                f"{label!r} text was found in {_MAX_SEGMENT_REDRAWS * _MAX_TEXT_ATTEMPTS} attempts "
                f"(vocabulary={vocabulary!r}); lower n or widen intent_shares/segment_mix"
            )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Human audit.
# ---------------------------------------------------------------------------
def _md_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def write_audit_sample(rows: Sequence[Mapping[str, Any]], path: str | Path, k: int = 50, seed: int = 0) -> Path:
    """Write ``k`` randomly chosen rows as a Markdown table for a human to audit.

    Reviewers spot-check that labels are right and tags are believable; a seeded
    sample keeps the audit reproducible.  Returns the written path.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty; nothing to audit")
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(k, len(rows))))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Synthetic data audit sample",
        "",
        f"{len(picked)} of {len(rows)} rows (sample seed {seed}). Check that each label is the message's "
        "primary intent, that `secondary` is right, and that every segment tag is visibly true.",
        "",
        "| # | text | label | secondary | segments | template_id |",
        "|---|------|-------|-----------|----------|-------------|",
    ]
    for i in picked:
        r = rows[i]
        lines.append(
            "| " + " | ".join(
                [str(i)] + [_md_cell(r.get(f)) for f in ("text", "label", "secondary", "segment", "template_id")]
            ) + " |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
