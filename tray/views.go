package tray

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// diagView shows the diagnostics and saves the support bundle.
type diagView struct {
	u       *UI
	t       *task
	text    *widget.Label
	refresh *escButton
	save    *escButton
	copy    *escButton
	close   *escButton
	d       *Diagnostics
}

func newDiagnosticsView(u *UI) view {
	v := &diagView{u: u}
	v.t = newTask(u, WinDiagnostics)
	v.t.onBusy = func(busy bool) {
		for _, b := range []*escButton{v.refresh, v.save, v.copy} {
			if busy || (b != v.refresh && v.d == nil) {
				b.Disable()
			} else {
				b.Enable()
			}
		}
	}
	return v
}

func (v *diagView) title() string         { return v.u.T("diag.title") + " — " + v.u.T("app.name") }
func (v *diagView) minSize() fyne.Size    { return fyne.NewSize(640, 480) }
func (v *diagView) focus() fyne.Focusable { return v.close }
func (v *diagView) closed()               { v.t.stopNow() }

func (v *diagView) build() fyne.CanvasObject {
	u := v.u
	v.text = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	v.text.Selectable = true
	v.text.Wrapping = fyne.TextWrapWord
	esc := func() { u.closeWindow(WinDiagnostics) }
	v.refresh = newButton(u.T("common.refresh"), theme.ViewRefreshIcon(), v.load, esc)
	v.copy = newButton(u.T("diag.copy"), theme.ContentCopyIcon(), func() {
		if v.d != nil {
			u.app.Clipboard().SetContent(v.d.Report(u.Catalogue()))
		}
	}, esc)
	v.save = newButton(u.T("diag.save"), theme.DocumentSaveIcon(), v.askSave, esc)
	v.save.Importance = widget.HighImportance
	v.close = newButton(u.T("common.close"), nil, esc, esc)
	v.copy.Disable()
	v.save.Disable()
	top := container.NewVBox(heading(u.T("diag.heading")), para(u.T("diag.intro")))
	bottom := container.NewVBox(v.t.widgets(),
		buttons(v.refresh, v.copy, v.save, v.close))
	content := container.NewBorder(top, bottom, nil, nil, container.NewVScroll(v.text))
	if v.d != nil {
		v.show()
	} else {
		v.load()
	}
	return container.NewPadded(content)
}

func (v *diagView) load() {
	var d Diagnostics
	setup := v.u.cfg.Browsers
	v.t.start(v.u.T("diag.collecting"), func(ctx context.Context) error {
		d = v.u.cfg.Diagnose(ctx)
		d.AddBrowsers(setup)
		return nil
	}, func(error) {
		v.d = &d
		v.show()
		v.t.onBusy(false)
		v.u.event(Event{Kind: "result", Window: WinDiagnostics, OK: true, Message: d.Report(v.u.Catalogue())})
	})
}

func (v *diagView) show() {
	v.text.SetText(v.d.Report(v.u.Catalogue()))
}

// askSave asks where to save the support bundle.
func (v *diagView) askSave() {
	w := v.u.window(WinDiagnostics)
	if w == nil || v.d == nil {
		return
	}
	fd := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil {
			v.t.result(false, v.u.problemText(err))
			return
		}
		if wc == nil {
			return // cancelled
		}
		err = v.writeBundle(wc)
		if cerr := wc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			v.t.result(false, v.u.problemText(err))
			return
		}
		v.t.result(true, v.u.T("diag.saved", map[string]any{"Path": wc.URI().Path()}))
	}, w)
	fd.SetFileName(fmt.Sprintf("cie-desktop-support-%s.zip", time.Now().Format("20060102-150405")))
	fd.Show()
}

// writeBundle writes the redacted support bundle.
func (v *diagView) writeBundle(w io.Writer) error {
	var log []byte
	if v.u.cfg.Log != nil {
		log = v.u.cfg.Log.Tail(256 << 10)
	}
	st := v.u.Status()
	return WriteBundle(w, *v.d, log, v.u.settings(), st.Holder, st.PAN)
}

// settingsView chooses the language and the log level.
type settingsView struct {
	u    *UI
	lang *widget.RadioGroup
	logs *widget.Select
	msg  *widget.Label
}

func newSettingsView(u *UI) view { return &settingsView{u: u} }

func (v *settingsView) title() string         { return v.u.T("settings.title") + " — " + v.u.T("app.name") }
func (v *settingsView) minSize() fyne.Size    { return fyne.NewSize(480, 10) }
func (v *settingsView) focus() fyne.Focusable { return nil }
func (v *settingsView) closed()               {}

// languageChoices are the language options, with their settings value.
func (v *settingsView) languageChoices() ([]string, []string) {
	return []string{v.u.T("settings.lang_auto"), "Italiano", "English"}, []string{"", "it", "en"}
}

func (v *settingsView) logChoices() []string {
	u := v.u
	return []string{u.T("settings.log_off"), u.T("settings.log_error"), u.T("settings.log_info"), u.T("settings.log_debug")}
}

func (v *settingsView) build() fyne.CanvasObject {
	u := v.u
	s := u.settings()
	labels, values := v.languageChoices()
	v.lang = widget.NewRadioGroup(labels, nil)
	v.lang.Required = true
	for i, val := range values {
		if val == s.Language {
			v.lang.Selected = labels[i]
		}
	}
	v.lang.OnChanged = func(label string) {
		for i, l := range labels {
			if l == label && values[i] != u.settings().Language {
				s := u.settings()
				s.Language = values[i]
				v.apply(s, true)
				return
			}
		}
	}
	logLabels := v.logChoices()
	v.logs = widget.NewSelect(logLabels, nil)
	for i, l := range LogLevels {
		if l == s.LogLevel || (s.LogLevel == "" && l == LogOff) {
			v.logs.Selected = logLabels[i]
		}
	}
	v.logs.OnChanged = func(label string) {
		for i, l := range logLabels {
			if l == label {
				s := u.settings()
				s.LogLevel = LogLevels[i]
				v.apply(s, false)
			}
		}
	}
	v.msg = widget.NewLabel("")
	v.msg.Wrapping = fyne.TextWrapWord
	v.msg.Hide()
	logPath := u.T("settings.log_none")
	if u.cfg.Log != nil {
		logPath = u.cfg.Log.Path()
	}
	pathLabel := widget.NewLabel(logPath)
	pathLabel.Selectable = true
	pathLabel.Wrapping = fyne.TextWrapBreak
	return container.NewPadded(container.NewVBox(
		heading(u.T("settings.heading")),
		labelled(
			fieldLabel(u.T("settings.language")), v.lang,
			fieldLabel(u.T("settings.log_level")), v.logs,
			fieldLabel(u.T("settings.log_file")), pathLabel,
		),
		para(u.T("settings.log_note")),
		v.msg,
		buttons(newButton(u.T("common.close"), nil, func() { u.closeWindow(WinSettings) }, func() { u.closeWindow(WinSettings) })),
	))
}

// apply saves s; a language change redraws every window, this one included.
func (v *settingsView) apply(s Settings, langChanged bool) {
	u := v.u
	err := u.saveSettings(s)
	if langChanged {
		u.SetLanguage(s.Language) // rebuilds this window: v.msg is new
	}
	if err != nil {
		v.msg.Importance = widget.DangerImportance
		v.msg.SetText(u.T("settings.save_failed", map[string]any{"Error": err.Error()}))
		v.msg.Show()
		u.event(Event{Kind: "result", Window: WinSettings, Message: v.msg.Text})
		return
	}
	v.msg.Importance = widget.SuccessImportance
	v.msg.SetText(u.T("settings.saved"))
	v.msg.Show()
	u.event(Event{Kind: "result", Window: WinSettings, OK: true, Message: v.msg.Text})
}

// aboutView shows the version.
type aboutView struct {
	u     *UI
	close *escButton
}

func newAboutView(u *UI) view { return &aboutView{u: u} }

func (v *aboutView) title() string         { return v.u.T("about.title") + " — " + v.u.T("app.name") }
func (v *aboutView) minSize() fyne.Size    { return fyne.NewSize(460, 10) }
func (v *aboutView) focus() fyne.Focusable { return v.close }
func (v *aboutView) closed()               {}

func (v *aboutView) build() fyne.CanvasObject {
	u := v.u
	img := canvas.NewImageFromResource(appIcon)
	img.FillMode = canvas.ImageFillContain
	img.SetMinSize(fyne.NewSize(96, 96))
	version := u.cfg.Version
	if version == "" {
		version = "dev"
	}
	esc := func() { u.closeWindow(WinAbout) }
	v.close = newButton(u.T("common.close"), nil, esc, esc)
	name := heading(u.T("app.name"))
	name.Alignment = fyne.TextAlignCenter
	ver := widget.NewLabelWithStyle(u.T("about.version", map[string]any{"Version": version}), fyne.TextAlignCenter, fyne.TextStyle{})
	ver.Selectable = true
	return container.NewPadded(container.NewVBox(
		container.NewCenter(img),
		name,
		ver,
		para(u.T("about.description")),
		para(u.T("about.disclaimer")),
		widget.NewLabelWithStyle(fmt.Sprintf("Go %s, %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH),
			fyne.TextAlignCenter, fyne.TextStyle{Italic: true}),
		buttons(v.close),
	))
}
