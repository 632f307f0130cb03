package tray

import (
	"context"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/internal/browser"
)

// browsersView lists the places the browsers read the PKCS#11 module from
// (Chromium's NSS databases, Firefox's profiles and system-wide policy),
// with the module's state in each, and registers or removes it.
type browsersView struct {
	u          *UI
	t          *task
	module     *widget.Label
	rows       *fyne.Container
	refresh    *escButton
	register   *escButton
	unregister *escButton
	close      *escButton
	out        *browserOutcome // the last outcome shown
	msg        string          // its summary
	ok         bool
	// pending is an action asked for (from the tray menu) while another
	// ran; 0 (browsersStatus) means none.
	pending browserOp
}

func newBrowsersView(u *UI) view {
	v := &browsersView{u: u}
	v.t = newTask(u, WinBrowsers)
	v.t.onBusy = func(bool) { v.enable() }
	return v
}

func (v *browsersView) title() string         { return v.u.T("browsers.title") + " — " + v.u.T("app.name") }
func (v *browsersView) minSize() fyne.Size    { return fyne.NewSize(640, 520) }
func (v *browsersView) focus() fyne.Focusable { return v.close }
func (v *browsersView) closed()               { v.t.stopNow() }

func (v *browsersView) build() fyne.CanvasObject {
	u := v.u
	esc := func() { u.closeWindow(WinBrowsers) }
	v.module = widget.NewLabel("")
	v.module.Wrapping = fyne.TextWrapWord
	v.module.Selectable = true
	v.rows = container.NewVBox()
	v.refresh = newButton(u.T("common.refresh"), theme.ViewRefreshIcon(), func() { v.request(browsersStatus) }, esc)
	v.unregister = newButton(u.T("browsers.unregister"), theme.DeleteIcon(), func() { v.request(browsersUnregister) }, esc)
	v.register = newButton(u.T("browsers.register"), theme.ConfirmIcon(), func() { v.request(browsersRegister) }, esc)
	v.register.Importance = widget.HighImportance
	v.close = newButton(u.T("common.close"), nil, esc, esc)
	top := container.NewVBox(heading(u.T("browsers.heading")), para(u.T("browsers.intro")),
		labelled(fieldLabel(u.T("browsers.module")), v.module))
	bottom := container.NewVBox(v.t.widgets(), buttons(v.refresh, v.unregister, v.register, v.close))
	content := container.NewBorder(top, bottom, nil, nil, container.NewVScroll(v.rows))
	if v.out != nil && !v.t.busy() {
		v.show(false)
	} else if !v.t.busy() {
		v.request(browsersStatus)
	}
	v.enable()
	return container.NewPadded(content)
}

// enable sets the buttons for the state: nothing while an operation runs,
// no Register without a module, nothing where the installer does it.
func (v *browsersView) enable() {
	if v.register == nil {
		return
	}
	busy := v.t.busy()
	unsupported := v.out != nil && v.out.env.unsupported
	noModule := v.out == nil || v.out.env.moduleErr != nil
	for _, b := range []struct {
		b   *escButton
		off bool
	}{
		{v.refresh, busy},
		{v.register, busy || unsupported || noModule},
		{v.unregister, busy || unsupported || v.out == nil},
	} {
		if b.off {
			b.b.Disable()
		} else {
			b.b.Enable()
		}
	}
}

// request runs op, or runs it after the operation in progress.
func (v *browsersView) request(op browserOp) {
	if v.t.busy() {
		if op != browsersStatus {
			v.pending = op
		}
		return
	}
	setup := v.u.cfg.Browsers
	var out browserOutcome
	what := v.u.T("browsers.reading")
	switch op {
	case browsersRegister:
		what = v.u.T("browsers.registering")
	case browsersUnregister:
		what = v.u.T("browsers.unregistering")
	}
	v.t.start(what, func(context.Context) error {
		out = runBrowsers(setup, op)
		return nil
	}, func(error) {
		v.out = &out
		v.show(true)
		v.enable()
		if p := v.pending; p != browsersStatus {
			v.pending = browsersStatus
			v.request(p)
		}
	})
}

// show puts the last outcome in the window; report: as a result Event too.
func (v *browsersView) show(report bool) {
	c := v.u.Catalogue()
	o := v.out
	infos := browserInfos(o.env.cfg.Home, o.env.readOnly, o.reports)
	if o.env.unsupported {
		v.module.SetText(c.T("browsers.unsupported"))
	} else {
		v.module.SetText(moduleText(c, o.env.cfg.Module, moduleProblem(o.env.moduleErr)))
	}
	v.rows.Objects = nil
	for _, bi := range infos {
		// One RichText per place: its name in bold, its state below,
		// without the padding between two labels.
		detail := bi.stateText(c)
		if bi.Kind == browser.FirefoxProfile {
			detail = bi.Path + " — " + detail
		}
		colour := theme.ColorNameForeground
		switch {
		case bi.Error != "":
			colour = theme.ColorNameError
		case bi.InUse || bi.LibraryMissing:
			colour = theme.ColorNameWarning
		}
		rt := widget.NewRichText(
			&widget.TextSegment{Text: bi.place(c), Style: widget.RichTextStyle{TextStyle: fyne.TextStyle{Bold: true}, ColorName: theme.ColorNameForeground}},
			&widget.TextSegment{Text: detail, Style: widget.RichTextStyle{ColorName: colour}},
		)
		rt.Wrapping = fyne.TextWrapWord
		v.rows.Add(rt)
	}
	if len(infos) == 0 && !o.env.unsupported {
		v.rows.Add(para(c.T("browsers.none_found")))
	}
	v.rows.Refresh()
	msg, ok := o.summary(c, infos)
	v.msg, v.ok = msg, ok
	imp := widget.SuccessImportance
	switch {
	case !ok:
		imp = widget.DangerImportance
	case o.op == browsersStatus:
		imp = widget.MediumImportance
	}
	v.t.show(msg, imp)
	if report {
		full := msg + "\n" + c.T("browsers.module") + ": " + v.module.Text + "\n" + listText(c, infos)
		v.u.event(Event{Kind: "result", Window: WinBrowsers, OK: ok, Message: full})
	}
}

// browsersAction opens the browsers window and runs op in it, so that its
// outcome is shown (the tray menu's Register and Remove).
func (u *UI) browsersAction(op browserOp) {
	if err := u.Open(WinBrowsers); err != nil {
		u.log.Error("opening a window", "err", err)
		return
	}
	if v, ok := u.windows[WinBrowsers].v.(*browsersView); ok {
		v.request(op)
	}
}
