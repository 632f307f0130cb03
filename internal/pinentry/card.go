package pinentry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DialogTimeout is how long a CIE PIN dialog waits for the user.
const DialogTimeout = 2 * time.Minute

// Reason says why the PIN is asked.
type Reason int

// Reasons.
const (
	FirstTry  Reason = iota // no entry yet
	WrongPIN                // the card refused the previous entry; a try was spent
	Malformed               // the previous entry was not 8 digits; it was not sent to the card
)

// CardPrompt is the module's request for the CIE PIN.
type CardPrompt struct {
	// Holder is the card holder's name (the token label).
	Holder string
	// Program is the program that asks for the signature (the browser), if
	// known. PKCS#11 does not tell which site the signature is for.
	Program string
	// TriesLeft is the PIN's tries left; -1 when unknown.
	TriesLeft int
	Reason    Reason
	// Lang is "it" for Italian texts; anything else gives English.
	Lang string
}

// Language returns "it" when the locale (LC_ALL, LC_MESSAGES, LANG) is
// Italian, else "en".
func Language(getenv func(string) string) string {
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := getenv(k); v != "" {
			if strings.HasPrefix(v, "it") {
				return "it"
			}
			return "en"
		}
	}
	return "en"
}

type texts struct {
	title, someone, yourCard, holderCard, wants, digits, prompt, ok, cancel string
	last, malformed, locked, wrongUnknown                                   string
	left, wrong                                                             func(n int) string
}

var english = texts{
	title:      "CIE PIN",
	someone:    "A program",
	yourCard:   "your CIE (electronic identity card)",
	holderCard: "the CIE of %s (electronic identity card)",
	wants: "%s wants to sign with %s to log you in to a website or a service. " +
		"The card is not told which site: sign only if you have just asked to log in.",
	digits: "Type the PIN, all 8 digits: the first 4 are on the receipt from the municipality, " +
		"the last 4 in the letter that came with the card.",
	prompt:       "PIN (8 digits):",
	ok:           "Sign",
	cancel:       "Cancel",
	last:         "Last try: a wrong PIN now blocks the card. You would then need the PUK to unblock it.",
	malformed:    "The PIN is 8 digits and nothing else. That entry was not sent to the card: no try was used.",
	wrongUnknown: "Wrong PIN.",
	locked: "The PIN of %s is blocked after 3 wrong entries, so the card cannot sign. " +
		"Unblock it with the PUK: in the CIE Desktop app, or with the command 'cie pin unblock'.",
	left: func(n int) string {
		if n == 1 {
			return "1 try left."
		}
		return strconv.Itoa(n) + " tries left."
	},
	wrong: func(n int) string {
		if n == 1 {
			return "Wrong PIN: 1 try left. The next wrong PIN blocks the card."
		}
		return fmt.Sprintf("Wrong PIN: %d tries left.", n)
	},
}

var italian = texts{
	title:      "PIN della CIE",
	someone:    "Un programma",
	yourCard:   "la tua CIE (carta d'identità elettronica)",
	holderCard: "la CIE di %s (carta d'identità elettronica)",
	wants: "%s vuole firmare con %s per farti accedere a un sito o a un servizio. " +
		"La carta non sa quale sito: firma solo se hai appena chiesto di accedere.",
	digits: "Inserisci il PIN, tutte le 8 cifre: le prime 4 sono sulla ricevuta del Comune, " +
		"le ultime 4 nella lettera arrivata con la carta.",
	prompt:       "PIN (8 cifre):",
	ok:           "Firma",
	cancel:       "Annulla",
	last:         "Ultimo tentativo: un PIN errato ora blocca la carta, che potrai sbloccare solo con il PUK.",
	malformed:    "Il PIN è di 8 cifre, solo numeri. Quanto inserito non è stato inviato alla carta: nessun tentativo usato.",
	wrongUnknown: "PIN errato.",
	locked: "Il PIN di %s è bloccato dopo 3 tentativi errati: la carta non può firmare. " +
		"Sbloccalo con il PUK: nell'app CIE Desktop o con il comando 'cie pin unblock'.",
	left: func(n int) string {
		if n == 1 {
			return "1 tentativo rimasto."
		}
		return strconv.Itoa(n) + " tentativi rimasti."
	},
	wrong: func(n int) string {
		if n == 1 {
			return "PIN errato: 1 tentativo rimasto. Un altro PIN errato blocca la carta."
		}
		return fmt.Sprintf("PIN errato: %d tentativi rimasti.", n)
	},
}

func (p CardPrompt) texts() texts {
	if p.Lang == "it" {
		return italian
	}
	return english
}

func (p CardPrompt) card(t texts) string {
	if p.Holder == "" {
		return t.yourCard
	}
	return fmt.Sprintf(t.holderCard, p.Holder)
}

// options are the cie-tray extensions: the tries left (the dialog warns
// before the last) and the holder.
func (p CardPrompt) options() []Option {
	var o []Option
	if p.TriesLeft >= 0 {
		o = append(o, Option{"cie-tries-left", strconv.Itoa(p.TriesLeft)})
	}
	if p.Holder != "" {
		o = append(o, Option{"cie-holder", p.Holder})
	}
	return o
}

// PINDialog returns the dialog that asks the PIN: who asks, whose card,
// "all 8 digits", the tries left (a warning before the last try), and why
// the PIN is asked again after a wrong or malformed entry.
func (p CardPrompt) PINDialog() Dialog {
	t := p.texts()
	who := p.Program
	if who == "" {
		who = t.someone
	}
	desc := []string{fmt.Sprintf(t.wants, who, p.card(t)), t.digits}
	switch {
	case p.TriesLeft == 1:
		desc = append(desc, t.last)
	case p.TriesLeft > 1:
		desc = append(desc, t.left(p.TriesLeft))
	}
	d := Dialog{
		Title:       t.title,
		Description: strings.Join(desc, "\n\n"),
		Prompt:      t.prompt,
		OK:          t.ok,
		Cancel:      t.cancel,
		Timeout:     DialogTimeout,
		Options:     p.options(),
	}
	switch p.Reason {
	case WrongPIN:
		if p.TriesLeft >= 0 {
			d.Error = t.wrong(p.TriesLeft)
		} else {
			d.Error = t.wrongUnknown
		}
	case Malformed:
		d.Error = t.malformed
	}
	return d
}

// LockedDialog returns the message shown when the PIN is blocked.
func (p CardPrompt) LockedDialog() Dialog {
	t := p.texts()
	return Dialog{
		Title:       t.title,
		Description: fmt.Sprintf(t.locked, p.card(t)),
		OK:          "OK",
		Timeout:     DialogTimeout,
		Options:     p.options(),
	}
}
