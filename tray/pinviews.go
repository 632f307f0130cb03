package tray

import (
	"bytes"
	"context"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/cie"
)

// pinView is the change-PIN window (current PIN + new PIN twice) and the
// unblock window (PUK + new PIN twice). Every rule of cie-protocol.md §7
// is checked before the card is touched; the card then checks the current
// PIN or the PUK itself.
type pinView struct {
	u      *UI
	name   string
	ref    cie.PINRef // cie.PIN: change; cie.PUK: unblock
	first  *escEntry
	new1   *escEntry
	new2   *escEntry
	state  *widget.Label // tries left of the PIN or PUK
	warn   *widget.Label // last-try warning
	submit *escButton
	close  *escButton
	goUnb  *escButton // "Unblock the PIN…" when the PIN is blocked
	t      *task
	done   bool // the operation succeeded: the form stays disabled
	loaded bool // the state was read once
}

func newChangePINView(u *UI) view {
	v := &pinView{u: u, name: WinChangePIN, ref: cie.PIN}
	v.t = newTask(u, v.name)
	v.t.onBusy = v.setBusy
	return v
}

func newUnblockView(u *UI) view {
	v := &pinView{u: u, name: WinUnblockPIN, ref: cie.PUK}
	v.t = newTask(u, v.name)
	v.t.onBusy = v.setBusy
	return v
}

func (v *pinView) key(change, unblock string) string {
	if v.ref == cie.PIN {
		return change
	}
	return unblock
}

func (v *pinView) title() string {
	return v.u.T(v.key("change.title", "unblock.title")) + " — " + v.u.T("app.name")
}

func (v *pinView) minSize() fyne.Size { return fyne.NewSize(520, 10) }

func (v *pinView) focus() fyne.Focusable {
	if v.done || v.first.Disabled() {
		return nil
	}
	return v.first
}

func (v *pinView) closed() { v.t.stopNow() }

func (v *pinView) build() fyne.CanvasObject {
	u := v.u
	hint := u.T("pin.placeholder")
	esc := func() { u.closeWindow(v.name) }
	v.first, v.new1, v.new2 = newPINField(hint, esc), newPINField(hint, esc), newPINField(hint, esc)
	v.first.OnSubmitted = func(string) { u.focusIn(v.name, v.new1) }
	v.new1.OnSubmitted = func(string) { u.focusIn(v.name, v.new2) }
	v.new2.OnSubmitted = func(string) { v.doSubmit() }
	v.state = widget.NewLabel("")
	v.warn = widget.NewLabel(u.T("pin.last_try_warning"))
	v.warn.Importance = widget.WarningImportance
	v.warn.Wrapping = fyne.TextWrapWord
	v.warn.Hide()
	v.submit = newButton(u.T(v.key("change.submit", "unblock.submit")), theme.ConfirmIcon(), v.doSubmit, esc)
	v.submit.Importance = widget.HighImportance
	v.close = newButton(u.T("common.close"), nil, esc, esc)
	v.goUnb = newButton(u.T("change.go_unblock"), nil, func() {
		u.closeWindow(v.name)
		_ = u.Open(WinUnblockPIN)
	}, esc)
	v.goUnb.Hide()

	firstLabel := u.T("change.current")
	halves := u.T("pin.hint_halves")
	if v.ref == cie.PUK {
		firstLabel = u.T("unblock.puk")
		halves = u.T("puk.hint_halves")
	}
	stateLabel := fieldLabel(v.key("PIN", "PUK"))
	form := labelled(
		stateLabel, v.state,
		fieldLabel(firstLabel), v.first,
		fieldLabel(u.T("pin.new")), v.new1,
		fieldLabel(u.T("pin.repeat")), v.new2,
	)
	content := container.NewVBox(
		heading(u.T(v.key("change.heading", "unblock.heading"))),
		para(halves),
		form,
		para(u.T("pin.rules")),
		v.warn,
		v.t.widgets(),
		buttons(v.goUnb, v.close, v.submit),
	)
	if v.done {
		v.setBusy(false)
	}
	v.showState()
	if !v.loaded {
		v.loaded = true
		v.load()
	}
	return container.NewPadded(content)
}

// load reads the tries left without spending one.
func (v *pinView) load() {
	// withCard reads the PIN and PUK state into the tray status, which
	// showState displays.
	v.t.start(v.u.T("common.reading_card"), func(ctx context.Context) error {
		return v.u.withCard(ctx, func(context.Context, *cie.Card) error { return nil })
	}, func(err error) {
		if err != nil {
			v.t.result(false, v.u.problemText(err))
			return
		}
		v.showState()
		v.u.event(Event{Kind: "ready", Window: v.name, Message: v.state.Text})
	})
}

// showState shows the tries left from the tray status (updated by every
// operation), warns before the last try, and disables the form when the
// PIN or PUK is blocked.
func (v *pinView) showState() {
	st := v.u.Status()
	if st.Presence != CIEPresent || !st.TriesKnown {
		v.state.SetText("…")
		return
	}
	ps := st.PIN
	if v.ref == cie.PUK {
		ps = st.PUK
	}
	v.state.SetText(v.u.pinStateLine(ps, v.ref))
	v.warn.Hidden = !(ps.Remaining == 1 && !ps.Blocked)
	v.warn.Refresh()
	blocked := ps.Blocked || st.PUK.Blocked
	if v.ref == cie.PIN && st.PIN.Blocked && !st.PUK.Blocked {
		v.goUnb.Show()
	} else {
		v.goUnb.Hide()
	}
	if blocked && !v.done {
		v.enable(false)
		if v.ref == cie.PUK || st.PUK.Blocked {
			v.t.show(v.u.T("problem.puk_blocked"), widget.DangerImportance)
		} else {
			v.t.show(v.u.T("problem.pin_blocked"), widget.DangerImportance)
		}
	}
}

func (v *pinView) enable(on bool) {
	for _, e := range []*escEntry{v.first, v.new1, v.new2} {
		if on {
			e.Enable()
		} else {
			e.Disable()
		}
	}
	if on {
		v.submit.Enable()
	} else {
		v.submit.Disable()
	}
}

func (v *pinView) setBusy(busy bool) {
	if v.done {
		v.enable(false)
		return
	}
	// The fields stay editable while the tries are read; only sending waits.
	if busy {
		v.submit.Disable()
	} else {
		v.submit.Enable()
	}
}

// check applies the rules before the card is touched; it returns the
// message and the field to correct, or "".
func (v *pinView) check(first, n1, n2 []byte) (string, *escEntry) {
	u := v.u
	if err := cie.ValidatePIN(first); err != nil {
		return u.T(v.key("change.bad_current", "unblock.bad_puk")), v.first
	}
	if v.ref == cie.PIN && bytes.Equal(first, n1) {
		return u.T("change.same"), v.new1
	}
	if msg := u.newPINProblem(n1); msg != "" {
		return msg, v.new1
	}
	if !bytes.Equal(n1, n2) {
		return u.T("pin.mismatch"), v.new1
	}
	return "", nil
}

func (v *pinView) doSubmit() {
	if v.t.busy() || v.done || v.submit.Disabled() {
		return
	}
	u := v.u
	first, n1, n2 := secret(v.first), secret(v.new1), secret(v.new2)
	if msg, field := v.check(first, n1, n2); msg != "" {
		clearAll(first, n1, n2)
		v.t.result(false, msg+" "+u.T("common.nothing_sent"))
		u.focusIn(v.name, field)
		return
	}
	clear(n2)
	what := u.T(v.key("change.progress", "unblock.progress"))
	v.t.start(what, func(ctx context.Context) error {
		defer clearAll(first, n1)
		return u.withCard(ctx, func(ctx context.Context, c *cie.Card) error {
			if v.ref == cie.PUK {
				return c.UnblockPIN(ctx, first, n1)
			}
			return c.ChangePIN(ctx, first, n1)
		})
	}, func(err error) {
		if err == nil {
			v.done = true
			v.enable(false)
			v.warn.Hide()
			v.showState()
			v.t.result(true, u.T(v.key("change.done", "unblock.done")))
			v.close.Importance = widget.HighImportance
			v.close.Refresh()
			u.focusIn(v.name, v.close)
			return
		}
		v.t.result(false, u.problemText(err))
		v.showState()
		if !v.first.Disabled() {
			u.focusIn(v.name, v.first)
		}
	})
}
