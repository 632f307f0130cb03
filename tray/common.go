package tray

import (
	"context"
	"errors"
	"runtime"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
)

// task is a window's long operation: a progress bar, a button that stops
// it, and the message line that says how it ended. The operation runs in
// the background; its result comes back on the UI goroutine.
type task struct {
	u      *UI
	window string
	bar    *widget.ProgressBarInfinite
	stop   *escButton
	note   *widget.Label // what is being done
	msg    *widget.Label // the outcome
	cancel context.CancelFunc
	// onBusy, when set, enables or disables the window's inputs.
	onBusy func(busy bool)
}

func newTask(u *UI, window string) *task { return &task{u: u, window: window} }

// widgets (re)makes the task's widgets for a window's build.
func (t *task) widgets() fyne.CanvasObject {
	t.bar = widget.NewProgressBarInfinite()
	t.bar.Stop()
	t.bar.Hide()
	t.note = widget.NewLabel("")
	t.note.Hide()
	t.stop = newButton(t.u.T("common.stop"), theme.CancelIcon(), t.stopNow, t.stopNow)
	t.stop.Hide()
	t.msg = widget.NewLabel("")
	t.msg.Wrapping = fyne.TextWrapWord
	t.msg.Hide()
	if t.cancel != nil {
		t.showBusy(true)
	}
	return container.NewVBox(t.msg, t.note, container.NewBorder(nil, nil, nil, t.stop, t.bar))
}

// busy reports whether an operation runs.
func (t *task) busy() bool { return t.cancel != nil }

func (t *task) showBusy(on bool) {
	if on {
		t.bar.Show()
		t.bar.Start()
		t.stop.Show()
		t.note.Show()
	} else {
		t.bar.Stop()
		t.bar.Hide()
		t.stop.Hide()
		t.note.Hide()
	}
	if t.onBusy != nil {
		t.onBusy(on)
	}
}

// start runs fn in the background, saying what is being done, then done
// with fn's error on the UI goroutine.
func (t *task) start(what string, fn func(ctx context.Context) error, done func(error)) {
	if t.busy() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), operationTimeout)
	t.cancel = cancel
	t.note.SetText(what)
	t.msg.Hide()
	t.showBusy(true)
	t.u.goTask(func() {
		err := fn(ctx)
		cancel()
		t.u.do(func() {
			t.cancel = nil
			t.showBusy(false)
			done(err)
		})
	})
}

// stopNow cancels the running operation.
func (t *task) stopNow() {
	if t.cancel != nil {
		t.cancel()
	}
}

// show puts a message in the window: an outcome, an error, a warning.
func (t *task) show(text string, imp widget.Importance) {
	t.msg.Importance = imp
	t.msg.SetText(text)
	t.msg.Show()
}

// result shows the outcome of an operation and reports it as an Event.
func (t *task) result(ok bool, text string) { t.resultWith(ok, text, text) }

// resultWith shows text and reports full (the whole outcome shown
// elsewhere in the window) as the Event's message.
func (t *task) resultWith(ok bool, text, full string) {
	imp := widget.SuccessImportance
	if !ok {
		imp = widget.DangerImportance
	}
	t.show(text, imp)
	t.u.event(Event{Kind: "result", Window: t.window, OK: ok, Message: full})
}

// heading is a window's title line.
func heading(text string) *widget.Label {
	l := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.SizeName = theme.SizeNameSubHeadingText
	return l
}

// para is a paragraph of wrapped text.
func para(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// buttons lays out a window's buttons at its bottom right.
func buttons(b ...fyne.CanvasObject) fyne.CanvasObject {
	return container.NewHBox(append([]fyne.CanvasObject{layout.NewSpacer()}, b...)...)
}

// secret takes the digits out of a PIN field and empties it. The bytes
// are the caller's to clear; the field's own string cannot be zeroed
// (fyne keeps text as strings), so it is dropped as soon as possible.
func secret(e *escEntry) []byte {
	b := []byte(e.Text)
	e.SetText("")
	return b
}

// clearAll zeroes secrets.
func clearAll(bs ...[]byte) {
	for _, b := range bs {
		clear(b)
	}
}

// focusIn gives the keyboard focus to f in the named window.
func (u *UI) focusIn(window string, f fyne.Focusable) {
	if w := u.window(window); w != nil && f != nil {
		w.Canvas().Focus(f)
	}
}

// tries returns "3 tries left" in the current language.
func (u *UI) tries(n int) string { return u.N("common.tries_left", n) }

// problemText is the message a citizen reads for err.
func (u *UI) problemText(err error) string {
	p, n := cardsession.Classify(err)
	switch p {
	case cardsession.ProblemNone:
		return ""
	case cardsession.ProblemCancelled:
		return u.T("problem.cancelled")
	case cardsession.ProblemNoService:
		return u.T(noServiceKey())
	case cardsession.ProblemNoReader:
		return u.T("problem.no_reader")
	case cardsession.ProblemReaderMatch:
		return u.T("problem.reader_match", map[string]any{"Reader": u.cfg.Reader})
	case cardsession.ProblemNoCard:
		return u.T("problem.no_card")
	case cardsession.ProblemCardRemoved:
		return u.T("problem.card_removed")
	case cardsession.ProblemUnsupported:
		return u.T("problem.unsupported")
	case cardsession.ProblemInvalidPIN:
		return u.T("problem.invalid_pin")
	case cardsession.ProblemWrongPIN:
		if n < 0 {
			return u.T("problem.wrong_pin")
		}
		msg := u.T("problem.wrong_pin_tries", map[string]any{"Tries": u.tries(n)})
		if n == 1 {
			msg += " " + u.T("problem.pin_last_try")
		}
		return msg
	case cardsession.ProblemPINBlocked:
		return u.T("problem.pin_blocked")
	case cardsession.ProblemWrongPUK:
		if n < 0 {
			return u.T("problem.wrong_puk")
		}
		msg := u.T("problem.wrong_puk_tries", map[string]any{"Tries": u.tries(n)})
		if n == 1 {
			msg += " " + u.T("problem.puk_last_try")
		}
		return msg
	case cardsession.ProblemPUKBlocked:
		return u.T("problem.puk_blocked")
	case cardsession.ProblemPINRequired:
		return u.T("problem.pin_required")
	case cardsession.ProblemChipAuthentication:
		return u.T("problem.chip_authentication")
	}
	return u.T("problem.other", map[string]any{"Error": strings.TrimPrefix(err.Error(), "cie: ")})
}

// newPINProblem checks a new PIN with the rules of cie.ValidateNewPIN
// (cie-protocol.md §7) before anything reaches the card, and says which
// rule it breaks; "" when the PIN is acceptable.
func (u *UI) newPINProblem(pin []byte) string {
	if err := cie.ValidatePIN(pin); err != nil {
		if len(pin) != 8 {
			return u.T("pin.new_length")
		}
		return u.T("pin.new_digits")
	}
	if err := cie.ValidateNewPIN(pin); err != nil {
		same := true
		for _, c := range pin {
			same = same && c == pin[0]
		}
		if same {
			return u.T("pin.new_same_digit")
		}
		return u.T("pin.new_sequence")
	}
	return ""
}

// pinStateLine says the state of a PIN or PUK: "3 tries left", "blocked".
func (u *UI) pinStateLine(st cie.PINStatus, ref cie.PINRef) string {
	return pinState(u.Catalogue(), st, ref)
}

// pinState is pinStateLine for catalogue c. A PIN verified in the session
// has its full count of tries, which is what the citizen needs to know.
func pinState(c *Catalogue, st cie.PINStatus, ref cie.PINRef) string {
	switch {
	case st.Blocked && ref == cie.PUK:
		return c.T("state.puk_blocked")
	case st.Blocked:
		return c.T("state.pin_blocked")
	}
	s := c.N("common.tries_left", st.Remaining)
	if st.Remaining == 1 {
		s += " — " + c.T("state.last_try")
	}
	return s
}

// labelled makes the "Name: value" rows of a form.
func labelled(rows ...fyne.CanvasObject) *fyne.Container {
	return container.New(layout.NewFormLayout(), rows...)
}

// fieldLabel is the label before an input field.
func fieldLabel(text string) *widget.Label {
	return widget.NewLabelWithStyle(text, fyne.TextAlignTrailing, fyne.TextStyle{})
}

// isPINRequired reports the card asking for the PIN first.
func isPINRequired(err error) bool { return errors.Is(err, cie.ErrPINRequired) }

// escEntry is an Entry that passes Escape to its window (close, cancel):
// fyne gives keys only to the focused widget, so without it Escape would
// do nothing while a field has the focus.
type escEntry struct {
	widget.Entry
	esc func()
}

// TypedKey handles Escape, and every other key as an Entry does.
func (e *escEntry) TypedKey(ev *fyne.KeyEvent) {
	if ev.Name == fyne.KeyEscape && e.esc != nil {
		e.esc()
		return
	}
	e.Entry.TypedKey(ev)
}

// escButton is a Button that passes Escape to its window.
type escButton struct {
	widget.Button
	esc func()
}

// TypedKey handles Escape, and Space as a Button does.
func (b *escButton) TypedKey(ev *fyne.KeyEvent) {
	if ev.Name == fyne.KeyEscape && b.esc != nil {
		b.esc()
		return
	}
	b.Button.TypedKey(ev)
}

// newButton makes a button whose Escape runs esc.
func newButton(text string, icon fyne.Resource, tapped func(), esc func()) *escButton {
	b := &escButton{esc: esc}
	b.Text, b.Icon, b.OnTapped = text, icon, tapped
	b.ExtendBaseWidget(b)
	return b
}

// newPINField is a masked field for a PIN or PUK, with hint as its
// placeholder, an eye to show the digits, and Escape running esc.
func newPINField(hint string, esc func()) *escEntry {
	e := &escEntry{esc: esc}
	e.Password = true
	e.Wrapping = fyne.TextWrap(fyne.TextTruncateClip)
	e.PlaceHolder = hint
	e.ExtendBaseWidget(e)
	e.ActionItem = newRevealer(e)
	return e
}

// revealer is the eye of a PIN field: it shows or hides the digits.
type revealer struct {
	widget.BaseWidget
	e   *escEntry
	img *canvas.Image
}

func newRevealer(e *escEntry) *revealer {
	r := &revealer{e: e, img: canvas.NewImageFromResource(theme.VisibilityOffIcon())}
	r.img.FillMode = canvas.ImageFillContain
	r.ExtendBaseWidget(r)
	return r
}

// CreateRenderer draws the eye.
func (r *revealer) CreateRenderer() fyne.WidgetRenderer { return widget.NewSimpleRenderer(r.img) }

// MinSize is an inline icon.
func (r *revealer) MinSize() fyne.Size { return fyne.NewSquareSize(theme.IconInlineSize()) }

// Tapped toggles between dots and digits.
func (r *revealer) Tapped(*fyne.PointEvent) {
	r.e.Password = !r.e.Password
	if r.e.Password {
		r.img.Resource = theme.VisibilityOffIcon()
	} else {
		r.img.Resource = theme.VisibilityIcon()
	}
	r.img.Refresh()
	r.e.Refresh()
}

// newTextEntry is a one-line text field (a file path) whose Escape runs esc.
func newTextEntry(hint string, esc func()) *escEntry {
	e := &escEntry{esc: esc}
	e.Wrapping = fyne.TextWrap(fyne.TextTruncateClip)
	e.PlaceHolder = hint
	e.ExtendBaseWidget(e)
	return e
}

// noServiceKey is the message for a PC/SC service that is not running: the
// service and how to start it depend on the operating system.
func noServiceKey() string {
	switch runtime.GOOS {
	case "windows":
		return "problem.no_service_windows"
	case "darwin":
		return "problem.no_service_darwin"
	}
	return "problem.no_service"
}
