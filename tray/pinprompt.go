package tray

import (
	"context"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/tray/pinentry"
)

// WinPIN is the name of the PIN dialog in Events.
const WinPIN = "pin"

// PINPrompter is the CIE PIN dialog behind `cie-tray pinentry`: it
// implements pinentry.Prompter with one fyne window, reused (hidden, not
// closed) between requests so that the app lives for the whole dialogue.
// The dialog shows the holder and the tries left, says the PIN has all 8
// digits and where the two halves come from, warns before the last try,
// gives the focus to the PIN field, and accepts only 8 digits.
type PINPrompter struct {
	app fyne.App
	// Lang is the language ("it", "en"); "" follows OPTION lc-messages,
	// else the system.
	Lang string
	// OnEvent, if set, receives the dialog's Events (on the UI goroutine).
	OnEvent func(Event)
	// do runs a function on the UI goroutine and waits (fyne.DoAndWait).
	do func(func())

	win fyne.Window
}

// NewPINPrompter returns the dialog on a (the fyne app or its test app).
func NewPINPrompter(a fyne.App, lang string) *PINPrompter {
	a.SetIcon(appIcon)
	addFyneItalian()
	return &PINPrompter{app: a, Lang: lang, do: fyne.DoAndWait}
}

func (p *PINPrompter) event(e Event) {
	if p.OnEvent != nil {
		p.OnEvent(e)
	}
}

func (p *PINPrompter) catalogue(r pinentry.Request) *Catalogue {
	if p.Lang != "" {
		return NewCatalogue(p.Lang)
	}
	if lc := r.Options["lc-messages"]; lc != "" && !strings.HasPrefix(lc, "C") && lc != "POSIX" {
		return NewCatalogue(bestLanguage([]string{lc}))
	}
	return NewCatalogue("")
}

// window returns the dialog window, made once and hidden between requests.
func (p *PINPrompter) window() fyne.Window {
	if p.win == nil {
		p.win = p.app.NewWindow("")
		p.win.SetIcon(appIcon)
		p.win.SetFixedSize(true)
	}
	return p.win
}

// label strips gpg's mnemonic underscores ("_OK" → "OK", "__" → "_").
func label(s, def string) string {
	if s == "" {
		return def
	}
	s = strings.ReplaceAll(s, "__", "\x00")
	s = strings.ReplaceAll(s, "_", "")
	return strings.ReplaceAll(s, "\x00", "_")
}

type pinAnswer struct {
	pin []byte
	ok  bool
}

// show puts the dialog on screen; answer gets exactly one answer.
func (p *PINPrompter) show(r pinentry.Request, ask bool, answer chan<- pinAnswer) {
	c := p.catalogue(r)
	w := p.window()
	title := r.Title
	if title == "" {
		title = c.T("pinentry.title") + " — " + c.T("app.name")
	}
	w.SetTitle(title)
	answered := false
	reply := func(a pinAnswer) {
		if answered {
			clear(a.pin)
			return
		}
		answered = true
		w.Hide()
		answer <- a
	}

	var parts []fyne.CanvasObject
	parts = append(parts, heading(c.T("pinentry.heading")))
	// The holder, unless the description already names them.
	if r.Holder != "" && !strings.Contains(strings.ToLower(r.Description), strings.ToLower(r.Holder)) {
		parts = append(parts, para(c.T("pinentry.holder", map[string]any{"Holder": nameCase(r.Holder)})))
	}
	if r.Description != "" {
		parts = append(parts, para(r.Description))
	}
	var entry, again *escEntry
	esc := func() { reply(pinAnswer{}) }
	msg := widget.NewLabel("")
	msg.Wrapping = fyne.TextWrapWord
	msg.Importance = widget.DangerImportance
	msg.Hidden = r.Error == ""
	msg.Text = r.Error

	ok := newButton(label(r.OK, c.T("common.ok")), theme.ConfirmIcon(), nil, esc)
	ok.Importance = widget.HighImportance
	cancel := newButton(label(r.Cancel, c.T("common.cancel")), theme.CancelIcon(), esc, esc)
	btns := []fyne.CanvasObject{cancel, ok}

	if ask {
		parts = append(parts, para(c.T("pinentry.all_digits")))
		if r.TriesLeft >= 0 {
			tries := widget.NewLabelWithStyle(c.N("common.tries_left", r.TriesLeft), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
			parts = append(parts, tries)
		}
		if r.TriesLeft == 1 {
			warn := para(c.T("pin.last_try_warning"))
			warn.Importance = widget.WarningImportance
			parts = append(parts, warn)
		}
		entry = newPINField(c.T("pin.placeholder"), esc)
		prompt := label(r.Prompt, "PIN")
		prompt = strings.TrimSuffix(strings.TrimSpace(prompt), ":")
		rows := []fyne.CanvasObject{fieldLabel(prompt), entry}
		if r.Repeat != "" {
			again = newPINField(c.T("pin.placeholder"), esc)
			rows = append(rows, fieldLabel(strings.TrimSuffix(label(r.Repeat, ""), ":")), again)
			entry.OnSubmitted = func(string) { w.Canvas().Focus(again) }
		}
		parts = append(parts, labelled(rows...))
		submit := func() {
			pin := secret(entry)
			var rep []byte
			if again != nil {
				rep = secret(again)
			}
			fail := ""
			switch {
			case cie.ValidatePIN(pin) != nil:
				fail = c.T("pinentry.need_8_digits")
			case again != nil && string(rep) != string(pin):
				fail = label(r.RepeatError, c.T("pin.mismatch"))
			}
			clear(rep)
			if fail != "" {
				clear(pin)
				msg.SetText(fail)
				msg.Show()
				p.event(Event{Kind: "result", Window: WinPIN, Message: fail})
				w.Canvas().Focus(entry)
				return
			}
			reply(pinAnswer{pin: pin, ok: true})
		}
		ok.OnTapped = submit
		if again != nil {
			again.OnSubmitted = func(string) { submit() }
		} else {
			entry.OnSubmitted = func(string) { submit() }
		}
	} else {
		ok.OnTapped = func() { reply(pinAnswer{ok: true}) }
		if r.OneButton {
			btns = []fyne.CanvasObject{ok}
		} else if r.NotOK != "" {
			btns = []fyne.CanvasObject{cancel, newButton(label(r.NotOK, ""), nil, esc, esc), ok}
		}
	}
	parts = append(parts, msg, buttons(btns...))
	w.SetContent(container.NewPadded(container.NewVBox(parts...)))
	fitWindow(w, fyne.NewSize(480, 10))
	w.SetCloseIntercept(func() { reply(pinAnswer{}) })
	w.Canvas().SetOnTypedKey(func(ev *fyne.KeyEvent) {
		if ev.Name == fyne.KeyEscape {
			reply(pinAnswer{})
		}
	})
	w.CenterOnScreen()
	w.Show()
	w.RequestFocus()
	if entry != nil {
		w.Canvas().Focus(entry)
	} else {
		w.Canvas().Focus(ok)
	}
	p.event(Event{Kind: "window", Window: WinPIN, Title: title})
}

func (p *PINPrompter) ask(ctx context.Context, r pinentry.Request, askPIN bool) (pinAnswer, error) {
	answer := make(chan pinAnswer, 1)
	p.do(func() { p.show(r, askPIN, answer) })
	select {
	case a := <-answer:
		return a, nil
	case <-ctx.Done():
		p.do(func() {
			if p.win != nil {
				p.win.Hide()
			}
		})
		select {
		case a := <-answer: // answered while closing
			clear(a.pin)
		default:
		}
		if ctx.Err() == context.DeadlineExceeded {
			return pinAnswer{}, pinentry.ErrTimeout
		}
		return pinAnswer{}, pinentry.ErrCancelled
	}
}

// GetPIN shows the PIN dialog; see pinentry.Prompter.
func (p *PINPrompter) GetPIN(ctx context.Context, r pinentry.Request) ([]byte, error) {
	a, err := p.ask(ctx, r, true)
	if err != nil {
		return nil, err
	}
	if !a.ok {
		return nil, pinentry.ErrCancelled
	}
	return a.pin, nil
}

// Confirm shows a question or a message; see pinentry.Prompter.
func (p *PINPrompter) Confirm(ctx context.Context, r pinentry.Request) (bool, error) {
	a, err := p.ask(ctx, r, false)
	if err != nil {
		return false, err
	}
	return a.ok, nil
}

// Close closes the dialog window (at the end of the dialogue).
func (p *PINPrompter) Close() {
	if p.win != nil {
		p.win.Close()
		p.win = nil
	}
}
