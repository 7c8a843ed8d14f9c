"""English and French for the sign-up pages: messages, the versioned consent text, language and
country negotiation from ``Accept-Language`` (never from the address), country names from Babel.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.core import get_global

LANGUAGES = ("en", "fr")
DEFAULT = "en"

# The consent checkbox. This text is the consent evidence: the id of the version a person ticked
# (``signup-v1-en``) is recorded with the consent event. Never edit a published version: add one
# and make it CONSENT_VERSION (a test pins the digests of published versions).
CONSENT_VERSION = "1"
CONSENT_TEXTS: dict[str, dict[str, str]] = {
    "1": {
        "en": (
            "I want {org} to text me a one-time code now, and after that an SMS only if my"
            " number appears in a data leak it learns about (a few a year at most). I can stop"
            " at any time by replying STOP, and get help by replying HELP. Message and data"
            " rates may apply."
        ),
        "fr": (
            "Je veux que {org} m'envoie maintenant un code à usage unique par SMS, puis un SMS"
            " seulement si mon numéro figure dans une fuite de données dont l'organisation a"
            " connaissance (quelques-uns par an au plus). Je peux arrêter à tout moment en"
            " répondant STOP, et obtenir de l'aide en répondant AIDE. Des frais de SMS peuvent"
            " s'appliquer."
        ),
    }
}


def consent_id(language: str, version: str = CONSENT_VERSION) -> str:
    return f"signup-v{version}-{language}"


def consent_text(language: str, org: str, version: str = CONSENT_VERSION) -> str:
    return CONSENT_TEXTS[version][language].format(org=org)


MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "skip": "Skip to content",
        "site_title": "Leak alerts by SMS",
        "nav_home": "Home",
        "nav_signup": "Sign up",
        "nav_stop": "Stop alerts",
        "nav_privacy": "Privacy",
        "lang_switch": "Français",
        "nav_label": "Main",
        "footer_contact": "Contact",
        "footer_note": "No analytics, no tracking",
        "error_prefix": "Error:",
        "lead": (
            "{org} sends you a text message when your phone number appears in a data leak that"
            " has been published, such as the 2021 Facebook scrape, so that you can watch out"
            " for scams aimed at you."
        ),
        "cta_signup": "Sign up for alerts",
        "cta_stop": "Stop alerts",
        "kept_title": "What we keep",
        "kept_body": (
            "Your number is never stored as you type it. We keep a keyed pseudonym of it (an"
            " HMAC that only our secret key can compute) to look for it in leaks, and a sealed,"
            " encrypted copy so that we can text you. Nothing else: no name, no address, no IP"
            " address."
        ),
        "leave_title": "How to leave",
        "leave_body": (
            "Reply STOP to any of our texts, or use the Stop alerts page. We then keep only a"
            " keyed pseudonym, so that your number is never added back without your own"
            " confirmation."
        ),
        "privacy_title": "Privacy notice",
        "privacy_who": "Who we are: {org}. Contact: {contact}.",
        "privacy_why": (
            "Why: to warn you when your number is found in a published data leak. Legal basis:"
            " your consent, which you can withdraw at any time."
        ),
        "privacy_what": (
            "What: the keyed pseudonym and the sealed copy of your number, the language you"
            " chose, and the history of your consent (which text you agreed to, and when)."
        ),
        "privacy_how_long": (
            "How long: until you leave. A sign-up that is not confirmed is deleted after 24 hours."
        ),
        "privacy_who_sees": (
            "Who sees your number: only our SMS provider, which needs it to deliver the texts."
        ),
        "privacy_no_tracking": (
            "No analytics and no tracking. The forms use one cookie, for security only."
        ),
        "privacy_rights": (
            "Your rights: to see, correct and erase your data, and to complain to your data"
            " protection authority."
        ),
        "signup_title": "Sign up for leak alerts",
        "signup_intro": (
            "We text you a code to check that the number is yours. You are signed up once you"
            " type that code here, or reply YES to the text."
        ),
        "country_label": "Country of your number",
        "country_choose": "Choose a country",
        "number_label": "Mobile number",
        "number_hint": "As you would dial it at home, for example 07400 123456.",
        "language_label": "Language of the texts",
        "consent_legend": "Your consent",
        "pow_hint": (
            "A short automatic check runs in your browser to keep robots out. It contacts no"
            " one but us."
        ),
        "noscript": (
            "JavaScript is off. The form still works, but we accept fewer sign-ups without it."
        ),
        "send_code": "Send me a code",
        "error_title": "There is a problem",
        "err_country": "Choose the country of your number",
        "err_country_not_served": "We cannot send texts to numbers from that country yet",
        "err_number": "Enter your mobile number",
        "err_number_invalid": "Enter a valid number for the country you chose",
        "err_consent": "Tick the box to agree to receive the texts",
        "err_pow": "The automatic check did not work. Please try again",
        "err_code": "Enter the 6-digit code from the text",
        "err_code_invalid": (
            "That code is not valid: it is wrong, has expired or was tried too often. Check the"
            " text, or ask for a new code"
        ),
        "sent_title": "Check your phone",
        "sent_body": (
            "If this number can receive texts, we sent a code. It is valid for 15 minutes."
        ),
        "code_label": "6-digit code",
        "confirm": "Confirm",
        "sent_reply": "You can also reply YES to the text instead of typing the code.",
        "sent_again": "No text after a few minutes? Ask for a new code.",
        "confirmed_title": "You are signed up",
        "confirmed_body": (
            "We will text you only if your number appears in a data leak. Reply STOP to any"
            " of our texts to leave."
        ),
        "stop_title": "Stop alerts",
        "stop_intro": (
            "Enter your number and we text you a code to check that it is yours. You can also"
            " reply STOP to any of our texts: that works straight away."
        ),
        "stop_sent_body": (
            "If this number gets our alerts, we sent a code. It is valid for 15 minutes."
        ),
        "stop_confirm": "Stop my alerts",
        "stopped_title": "Alerts stopped",
        "stopped_body": (
            "We will not text this number again. We keep only a keyed pseudonym of it, so that"
            " it is never added back without your own confirmation."
        ),
        "expired_title": "This page has expired",
        "expired_body": "For your security, forms expire. Please start again.",
        "busy_title": "Too many attempts",
        "busy_body": "Please wait a while, then try again.",
        "nojs_busy_body": (
            "We accept only a few sign-ups without JavaScript. Turn JavaScript on, or try"
            " again later."
        ),
        "budget_title": "Sign-ups are paused until tomorrow",
        "budget_body": (
            "We have sent as many codes today as our budget allows. Please come back tomorrow."
            " If you already get our alerts, nothing changes for you."
        ),
        "start_again": "Start again",
        "back_home": "Back to the home page",
        "too_large_title": "That was too much",
        "too_large_body": "The form sent more than we accept. Please try again.",
        "not_found_title": "Page not found",
        "nav_check": "Check your number",
        "cta_check": "Check whether your number leaked",
        "check_title": "Is your number in a leak?",
        "check_intro": (
            "Find out whether your phone number is in one of the leaks we know of. The check"
            " runs in your browser: your number never leaves it."
        ),
        "check_how_title": "How your number stays private",
        "check_how_body": (
            "Your browser sends us only a short code computed from your number, which a great"
            " many other numbers share, and a scrambled value that only your browser can"
            " unscramble. We answer with the leak entries for that code, in a form only your"
            " browser can recognise your number in. We never see your number, and the check"
            " leaves nothing behind."
        ),
        "check_country_label": "Country of the number",
        "check_number_label": "Phone number",
        "check_submit": "Check my number",
        "check_noscript": (
            "This check runs in your browser, so it needs JavaScript. Without it nothing is"
            " sent to us, and nothing can be checked."
        ),
        "check_pow_hint": (
            "A short automatic check runs in your browser first, to keep robots out. It"
            " contacts no one but us."
        ),
        "check_working": "Checking…",
        "check_err_number": "Enter the phone number to check",
        "check_err_letters": "Type the number with digits only",
        "check_err_invalid": (
            "This is not a valid number for the country you chose, so we cannot check it"
        ),
        "check_found_one": "Your number is in a leak",
        "check_found_many": "Your number is in {n} leaks",
        "check_found_intro": "These leaks hold your number, with these kinds of data:",
        "check_exposed": "Also exposed:",
        "check_number_only": "Only the number itself was exposed.",
        "check_none_title": "Your number is not in the leaks we know of",
        "check_none_body": (
            "That is good news, but a leak we have not seen may still hold it. The advice"
            " below is worth following all the same."
        ),
        "check_unverified_title": "The check could not be verified",
        "check_unverified_body": (
            "Our server's answer did not match the key it publishes, so it tells you nothing"
            " either way. Please try again later, and let us know if it happens again."
        ),
        "check_failed_title": "The check could not be done",
        "check_failed_body": "Please try again in a few minutes.",
        "check_busy_body": (
            "There have been too many checks from here or for numbers like this one. Please"
            " wait a while, then try again."
        ),
        "check_advice_title": "What to do",
        "check_advice_scams": (
            "Be wary of calls and texts that know your name or other details: scammers use"
            " leaked data to seem genuine."
        ),
        "check_advice_codes": (
            "Never give a code you received by text, a password or bank details to someone"
            " who contacts you, whoever they say they are."
        ),
        "check_advice_links": (
            "Do not tap links in unexpected texts. Contact the company through its own app or"
            " website instead."
        ),
        "check_advice_sim": (
            "Ask your mobile operator to protect your line against SIM swaps, for example"
            " with a PIN."
        ),
        "check_signup": "Get a text if your number shows up in a leak we learn about later:",
        "kind_account_id": "account ID",
        "kind_name": "name",
        "kind_gender": "gender",
        "kind_location": "location",
        "kind_relationship": "relationship status",
        "kind_work": "workplace",
        "kind_date": "dates",
        "kind_email": "email address",
        "kind_birthday": "birthday",
        "kind_other": "other details",
    },
    "fr": {
        "skip": "Aller au contenu",
        "site_title": "Alertes de fuite par SMS",
        "nav_home": "Accueil",
        "nav_signup": "S'inscrire",
        "nav_stop": "Arrêter les alertes",
        "nav_privacy": "Confidentialité",
        "lang_switch": "English",
        "nav_label": "Principal",
        "footer_contact": "Contact",
        "footer_note": "Aucune mesure d'audience, aucun pistage",
        "error_prefix": "Erreur :",
        "lead": (
            "{org} vous envoie un SMS quand votre numéro de téléphone figure dans une fuite de"
            " données rendue publique, comme l'aspiration de Facebook de 2021, pour que vous"
            " puissiez vous méfier des arnaques qui vous visent."
        ),
        "cta_signup": "S'inscrire aux alertes",
        "cta_stop": "Arrêter les alertes",
        "kept_title": "Ce que nous gardons",
        "kept_body": (
            "Votre numéro n'est jamais enregistré tel que vous le tapez. Nous en gardons un"
            " pseudonyme à clé (un HMAC que seule notre clé secrète peut calculer) pour le"
            " chercher dans les fuites, et une copie scellée, chiffrée, pour pouvoir vous écrire."
            " Rien d'autre : ni nom, ni adresse, ni adresse IP."
        ),
        "leave_title": "Comment partir",
        "leave_body": (
            "Répondez STOP à n'importe lequel de nos SMS, ou utilisez la page Arrêter les"
            " alertes. Nous ne gardons alors qu'un pseudonyme à clé, pour que votre numéro ne"
            " soit jamais réinscrit sans votre propre confirmation."
        ),
        "privacy_title": "Politique de confidentialité",
        "privacy_who": "Qui nous sommes : {org}. Contact : {contact}.",
        "privacy_why": (
            "Pourquoi : vous prévenir quand votre numéro est trouvé dans une fuite de données"
            " publiée. Base légale : votre consentement, que vous pouvez retirer à tout moment."
        ),
        "privacy_what": (
            "Quoi : le pseudonyme à clé et la copie scellée de votre numéro, la langue choisie"
            " et l'historique de votre consentement (quel texte vous avez accepté, et quand)."
        ),
        "privacy_how_long": (
            "Combien de temps : jusqu'à votre départ. Une inscription non confirmée est effacée"
            " après 24 heures."
        ),
        "privacy_who_sees": (
            "Qui voit votre numéro : seulement notre fournisseur de SMS, qui en a besoin pour"
            " remettre les messages."
        ),
        "privacy_no_tracking": (
            "Aucune mesure d'audience, aucun pistage. Les formulaires utilisent un seul"
            " cookie, pour la sécurité."
        ),
        "privacy_rights": (
            "Vos droits : consulter, corriger et effacer vos données, et porter plainte auprès"
            " de votre autorité de protection des données."
        ),
        "signup_title": "S'inscrire aux alertes de fuite",
        "signup_intro": (
            "Nous vous envoyons un code par SMS pour vérifier que le numéro est le vôtre. Vous"
            " êtes inscrit dès que vous tapez ce code ici, ou que vous répondez OUI au SMS."
        ),
        "country_label": "Pays de votre numéro",
        "country_choose": "Choisissez un pays",
        "number_label": "Numéro de mobile",
        "number_hint": "Comme vous le composez chez vous, par exemple 06 12 34 56 78.",
        "language_label": "Langue des SMS",
        "consent_legend": "Votre consentement",
        "pow_hint": (
            "Une courte vérification automatique tourne dans votre navigateur pour écarter les"
            " robots. Elle ne contacte personne d'autre que nous."
        ),
        "noscript": (
            "JavaScript est désactivé. Le formulaire fonctionne quand même, mais nous acceptons"
            " moins d'inscriptions sans lui."
        ),
        "send_code": "Envoyez-moi un code",
        "error_title": "Il y a un problème",
        "err_country": "Choisissez le pays de votre numéro",
        "err_country_not_served": ("Nous ne pouvons pas encore écrire aux numéros de ce pays"),
        "err_number": "Saisissez votre numéro de mobile",
        "err_number_invalid": "Saisissez un numéro valide pour le pays choisi",
        "err_consent": "Cochez la case pour accepter de recevoir les SMS",
        "err_pow": "La vérification automatique n'a pas fonctionné. Veuillez réessayer",
        "err_code": "Saisissez le code à 6 chiffres reçu par SMS",
        "err_code_invalid": (
            "Ce code n'est pas valable : il est faux, a expiré ou a été essayé trop souvent."
            " Vérifiez le SMS, ou demandez un nouveau code"
        ),
        "sent_title": "Regardez votre téléphone",
        "sent_body": (
            "Si ce numéro peut recevoir des SMS, nous avons envoyé un code. Il est valable"
            " 15 minutes."
        ),
        "code_label": "Code à 6 chiffres",
        "confirm": "Confirmer",
        "sent_reply": "Vous pouvez aussi répondre OUI au SMS au lieu de taper le code.",
        "sent_again": "Pas de SMS après quelques minutes ? Demandez un nouveau code.",
        "confirmed_title": "Vous êtes inscrit",
        "confirmed_body": (
            "Nous vous écrirons seulement si votre numéro figure dans une fuite de données."
            " Répondez STOP à n'importe lequel de nos SMS pour partir."
        ),
        "stop_title": "Arrêter les alertes",
        "stop_intro": (
            "Saisissez votre numéro : nous vous envoyons un code pour vérifier qu'il est le"
            " vôtre. Vous pouvez aussi répondre STOP à n'importe lequel de nos SMS : cela"
            " marche tout de suite."
        ),
        "stop_sent_body": (
            "Si ce numéro reçoit nos alertes, nous avons envoyé un code. Il est valable 15 minutes."
        ),
        "stop_confirm": "Arrêter mes alertes",
        "stopped_title": "Alertes arrêtées",
        "stopped_body": (
            "Nous n'écrirons plus à ce numéro. Nous n'en gardons qu'un pseudonyme à clé, pour"
            " qu'il ne soit jamais réinscrit sans votre propre confirmation."
        ),
        "expired_title": "Cette page a expiré",
        "expired_body": "Pour votre sécurité, les formulaires expirent. Veuillez recommencer.",
        "busy_title": "Trop de tentatives",
        "busy_body": "Veuillez patienter un moment, puis réessayer.",
        "nojs_busy_body": (
            "Nous n'acceptons que peu d'inscriptions sans JavaScript. Activez JavaScript, ou"
            " réessayez plus tard."
        ),
        "budget_title": "Les inscriptions reprennent demain",
        "budget_body": (
            "Nous avons envoyé aujourd'hui autant de codes que notre budget le permet. Revenez"
            " demain. Si vous recevez déjà nos alertes, rien ne change pour vous."
        ),
        "start_again": "Recommencer",
        "back_home": "Retour à l'accueil",
        "too_large_title": "C'était trop",
        "too_large_body": "Le formulaire a envoyé plus que nous n'acceptons. Veuillez réessayer.",
        "not_found_title": "Page introuvable",
        "nav_check": "Vérifier votre numéro",
        "cta_check": "Vérifier si votre numéro a fuité",
        "check_title": "Votre numéro est-il dans une fuite ?",
        "check_intro": (
            "Découvrez si votre numéro de téléphone figure dans l'une des fuites que nous"
            " connaissons. La vérification se fait dans votre navigateur : votre numéro ne le"
            " quitte jamais."
        ),
        "check_how_title": "Comment votre numéro reste privé",
        "check_how_body": (
            "Votre navigateur ne nous envoie qu'un court code calculé à partir de votre numéro,"
            " que partagent un très grand nombre d'autres numéros, et une valeur brouillée que"
            " lui seul peut débrouiller. Nous répondons avec les entrées des fuites pour ce"
            " code, sous une forme où seul votre navigateur peut reconnaître votre numéro. Nous"
            " ne voyons jamais votre numéro, et la vérification ne laisse aucune trace."
        ),
        "check_country_label": "Pays du numéro",
        "check_number_label": "Numéro de téléphone",
        "check_submit": "Vérifier mon numéro",
        "check_noscript": (
            "Cette vérification se fait dans votre navigateur : elle a besoin de JavaScript."
            " Sans lui, rien ne nous est envoyé, et rien ne peut être vérifié."
        ),
        "check_pow_hint": (
            "Une courte vérification automatique tourne d'abord dans votre navigateur pour"
            " écarter les robots. Elle ne contacte personne d'autre que nous."
        ),
        "check_working": "Vérification…",
        "check_err_number": "Saisissez le numéro de téléphone à vérifier",
        "check_err_letters": "Saisissez le numéro avec des chiffres seulement",
        "check_err_invalid": (
            "Ce n'est pas un numéro valide pour le pays choisi : nous ne pouvons pas le vérifier"
        ),
        "check_found_one": "Votre numéro est dans une fuite",
        "check_found_many": "Votre numéro est dans {n} fuites",
        "check_found_intro": "Ces fuites contiennent votre numéro, avec ces types de données :",
        "check_exposed": "Aussi exposé :",
        "check_number_only": "Seul le numéro lui-même a été exposé.",
        "check_none_title": "Votre numéro n'est pas dans les fuites que nous connaissons",
        "check_none_body": (
            "C'est une bonne nouvelle, mais une fuite que nous n'avons pas vue peut encore le"
            " contenir. Les conseils ci-dessous restent utiles."
        ),
        "check_unverified_title": "La vérification n'a pas pu être validée",
        "check_unverified_body": (
            "La réponse de notre serveur ne correspond pas à la clé qu'il publie : elle ne dit"
            " donc rien, ni dans un sens ni dans l'autre. Réessayez plus tard, et prévenez-nous"
            " si cela se reproduit."
        ),
        "check_failed_title": "La vérification n'a pas pu être faite",
        "check_failed_body": "Veuillez réessayer dans quelques minutes.",
        "check_busy_body": (
            "Il y a eu trop de vérifications depuis cet endroit ou pour des numéros proches de"
            " celui-ci. Veuillez patienter un moment, puis réessayer."
        ),
        "check_advice_title": "Que faire",
        "check_advice_scams": (
            "Méfiez-vous des appels et des SMS qui connaissent votre nom ou d'autres détails :"
            " les escrocs se servent des données qui ont fuité pour paraître crédibles."
        ),
        "check_advice_codes": (
            "Ne donnez jamais un code reçu par SMS, un mot de passe ou vos coordonnées"
            " bancaires à quelqu'un qui vous contacte, quoi qu'il prétende être."
        ),
        "check_advice_links": (
            "N'ouvrez pas les liens des SMS inattendus. Contactez plutôt l'entreprise par son"
            " application ou son site."
        ),
        "check_advice_sim": (
            "Demandez à votre opérateur de protéger votre ligne contre l'échange de carte SIM,"
            " par exemple avec un code."
        ),
        "check_signup": (
            "Recevez un SMS si votre numéro apparaît dans une fuite que nous découvrirons plus"
            " tard :"
        ),
        "kind_account_id": "identifiant de compte",
        "kind_name": "nom",
        "kind_gender": "genre",
        "kind_location": "lieu",
        "kind_relationship": "situation amoureuse",
        "kind_work": "employeur",
        "kind_date": "dates",
        "kind_email": "adresse e-mail",
        "kind_birthday": "date de naissance",
        "kind_other": "autres détails",
    },
}


def message(language: str, key: str, **values: str) -> str:
    text = MESSAGES[language if language in MESSAGES else DEFAULT][key]
    return text.format(**values) if values else text


def _ranges(accept_language: str | None) -> list[str]:
    """Language tags of an ``Accept-Language`` header, best first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        tag = tag.strip().replace("_", "-")
        if tag and tag != "*" and q > 0 and len(tag) <= 35:
            ranked.append((-q, i, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language: str | None, requested: str | None = None) -> str:
    """The page language: an explicit choice (``?lang=``), else the browser's, else English."""
    if requested in LANGUAGES:
        return str(requested)
    for tag in _ranges(accept_language):
        head = tag.split("-", 1)[0].lower()
        if head in LANGUAGES:
            return head
    return DEFAULT


def default_country(accept_language: str | None, allowed: frozenset[str] = frozenset()) -> str:
    """The country to preselect, from the browser's language tags only (``fr-BE`` → BE; a bare
    ``fr`` → its likely country, FR). Never from the client's address. Empty when none fits."""
    likely = get_global("likely_subtags")
    for tag in _ranges(accept_language):
        parts = tag.split("-")
        region = next((p.upper() for p in parts[1:] if len(p) == 2 and p.isalpha()), None)
        if region is None:
            guess = likely.get(parts[0].lower(), "")
            region = guess.split("_")[-1] if guess.count("_") >= 1 else None
        served = not allowed or region in allowed
        if region and region in phonenumbers.SUPPORTED_REGIONS and served:
            return region
    return ""


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    calling_code: int

    @property
    def label(self) -> str:
        return f"{self.name} (+{self.calling_code})"


def _sort_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@cache
def _all_countries(language: str) -> tuple[Country, ...]:
    try:
        names = Locale.parse(language).territories
    except (UnknownLocaleError, ValueError):
        names = Locale.parse(DEFAULT).territories
    found = [
        Country(code, names[code], phonenumbers.country_code_for_region(code))
        for code in phonenumbers.SUPPORTED_REGIONS
        if code in names
    ]
    return tuple(sorted(found, key=lambda c: _sort_key(c.name)))


def countries(language: str, allowed: frozenset[str] = frozenset()) -> tuple[Country, ...]:
    """Every country ``phonenumbers`` knows, named in ``language`` by Babel, sorted by name;
    only the ``allowed`` ones when that set is not empty."""
    every = _all_countries(language if language in LANGUAGES else DEFAULT)
    return every if not allowed else tuple(c for c in every if c.code in allowed)


@cache
def language_names() -> tuple[tuple[str, str], ...]:
    """``(tag, name in its own language)`` for the SMS language choice."""
    out = []
    for tag in LANGUAGES:
        name = Locale.parse(tag).get_display_name(tag) or tag
        out.append((tag, name[:1].upper() + name[1:]))
    return tuple(out)
