package tray

import (
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/cie"
)

// cardFacts is what the status window shows about the card.
type cardFacts struct {
	reader, family, idServizi, number string
	numberNeedsPIN                    bool
	pin, puk                          cie.PINStatus
}

// statusView shows the reader, the card, its numbers and the PIN and PUK
// state (read without spending a try), with the actions that fit.
type statusView struct {
	u       *UI
	t       *task
	rows    *fyne.Container
	refresh *escButton
	change  *escButton
	unblock *escButton
	close   *escButton
	facts   *cardFacts
}

func newStatusView(u *UI) view {
	v := &statusView{u: u}
	v.t = newTask(u, WinStatus)
	v.t.onBusy = func(busy bool) {
		if busy {
			v.refresh.Disable()
		} else {
			v.refresh.Enable()
		}
	}
	return v
}

func (v *statusView) title() string         { return v.u.T("status.title") + " — " + v.u.T("app.name") }
func (v *statusView) minSize() fyne.Size    { return fyne.NewSize(520, 10) }
func (v *statusView) focus() fyne.Focusable { return v.close }
func (v *statusView) closed()               { v.t.stopNow() }

func (v *statusView) build() fyne.CanvasObject {
	u := v.u
	v.rows = labelled()
	esc := func() { u.closeWindow(WinStatus) }
	v.refresh = newButton(u.T("common.refresh"), theme.ViewRefreshIcon(), v.load, esc)
	v.change = newButton(u.T("menu.change_pin"), nil, func() { _ = u.Open(WinChangePIN) }, esc)
	v.unblock = newButton(u.T("menu.unblock_pin"), nil, func() { _ = u.Open(WinUnblockPIN) }, esc)
	v.close = newButton(u.T("common.close"), nil, esc, esc)
	v.change.Disable()
	v.unblock.Disable()
	content := container.NewVBox(
		heading(u.T("status.heading")),
		v.rows,
		v.t.widgets(),
		buttons(v.refresh, v.change, v.unblock, v.close),
	)
	if v.facts != nil {
		v.show(v.facts)
	} else {
		v.load()
	}
	return container.NewPadded(content)
}

func (v *statusView) load() {
	f := &cardFacts{}
	v.t.start(v.u.T("common.reading_card"), func(ctx context.Context) error {
		return v.u.withCard(ctx, func(ctx context.Context, c *cie.Card) error {
			f.family = c.Family().Name
			f.idServizi = c.IDServizi()
			num, err := c.DocumentNumber(ctx)
			switch {
			case err == nil:
				f.number = num
			case isPINRequired(err):
				f.numberNeedsPIN = true
			default:
				return err
			}
			if f.pin, err = c.PINStatus(ctx); err != nil {
				return err
			}
			f.puk, err = c.PUKStatus(ctx)
			return err
		})
	}, func(err error) {
		if err != nil {
			v.facts = nil
			v.rows.Objects = nil
			v.rows.Refresh()
			v.change.Disable()
			v.unblock.Disable()
			v.t.result(false, v.u.problemText(err))
			return
		}
		f.reader = v.u.Status().Reader
		v.facts = f
		v.show(f)
		v.u.event(Event{Kind: "result", Window: WinStatus, OK: true, Message: v.text(f)})
	})
}

func (v *statusView) lines(f *cardFacts) [][2]string {
	u := v.u
	number := f.number
	if f.numberNeedsPIN {
		number = u.T("status.number_after_pin")
	}
	lines := [][2]string{
		{u.T("status.reader"), f.reader},
		{u.T("status.card"), u.T("status.card_value", map[string]any{"Family": f.family})},
	}
	if h := u.Status().Holder; h != "" {
		lines = append(lines, [2]string{u.T("status.holder"), h})
	}
	return append(lines,
		[2]string{u.T("status.id_servizi"), f.idServizi},
		[2]string{u.T("status.number"), number},
		[2]string{"PIN", u.pinStateLine(f.pin, cie.PIN)},
		[2]string{"PUK", u.pinStateLine(f.puk, cie.PUK)},
	)
}

func (v *statusView) text(f *cardFacts) string {
	s := ""
	for _, l := range v.lines(f) {
		s += fmt.Sprintf("%s: %s\n", l[0], l[1])
	}
	return s
}

func (v *statusView) show(f *cardFacts) {
	v.rows.Objects = nil
	for _, l := range v.lines(f) {
		val := widget.NewLabel(l[1])
		val.Selectable = true
		val.Wrapping = fyne.TextWrapWord
		v.rows.Add(fieldLabel(l[0]))
		v.rows.Add(val)
	}
	v.rows.Refresh()
	v.change.Enable()
	v.unblock.Enable()
	switch {
	case f.puk.Blocked:
		v.change.Disable()
		v.unblock.Disable()
		v.t.show(v.u.T("problem.puk_blocked"), widget.DangerImportance)
	case f.pin.Blocked:
		v.change.Disable()
		v.unblock.Importance = widget.HighImportance
		v.unblock.Refresh()
		v.t.show(v.u.T("problem.pin_blocked"), widget.DangerImportance)
	default:
		v.unblock.Importance = widget.MediumImportance
		v.unblock.Refresh()
		v.t.msg.Hide()
	}
}
