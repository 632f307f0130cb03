package tray

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/systray"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
	"github.com/ciedesktop/cie-desktop/tray/icon"
)

// Window names, for UI.Open and `cie-tray --open`.
const (
	WinStatus      = "status"
	WinChangePIN   = "change-pin"
	WinUnblockPIN  = "unblock-pin"
	WinDiagnostics = "diagnostics"
	WinBrowsers    = "browsers"
	WinSettings    = "settings"
	WinAbout       = "about"
)

// WindowNames lists the windows Open knows.
func WindowNames() []string {
	return []string{WinStatus, WinChangePIN, WinUnblockPIN, WinSign, WinVerify, WinBrowsers, WinDiagnostics, WinSettings, WinAbout}
}

// Event is something the user saw: a window opened or closed, the result
// of an operation, a new tray status, a notification. Config.OnEvent
// receives them; `cie-tray` writes them as JSON lines when
// CIE_TRAY_EVENTS names a file, so that the end-to-end test knows when to
// type and when to take a screenshot, and checks the words shown.
type Event struct {
	Kind    string `json:"event"`            // "window", "closed", "result", "status", "notice"
	Window  string `json:"window,omitempty"` // window name
	Title   string `json:"title,omitempty"`  // window title, or notification title
	OK      bool   `json:"ok,omitempty"`     // result: the operation succeeded
	Message string `json:"message,omitempty"`
}

// Config configures the desktop app.
type Config struct {
	// Version is shown in the about window and the diagnostics.
	Version string
	// Reader restricts the app to one reader (a name, part of a name, or
	// an index), like cie --reader; empty means the reader with the CIE.
	Reader string
	// Open opens the card for an operation; nil means cardsession.Open
	// through PC/SC.
	Open Opener
	// Settings are the user's choices; SettingsPath, when set, is where
	// the settings window saves them.
	Settings     Settings
	SettingsPath string
	// Log is the log file (nil: no logging). Its level follows Settings.
	Log *LogFile
	// CertCache gives the holder's name without a PIN (nil: none).
	CertCache *certcache.Cache
	// Diagnose gathers the diagnostics of the service, the readers and
	// the card (the window adds the module's registration in the
	// browsers, from Browsers); nil means GatherDiagnostics
	// through PC/SC.
	Diagnose func(ctx context.Context) Diagnostics
	// Browsers says where the browsers window registers the PKCS#11
	// module; the diagnostics show the registration from it too.
	Browsers BrowserSetup
	// TrustRoots are the trust anchors of the verify window (nil: none, and
	// no signature is reported valid, only intact and "untrusted").
	TrustRoots *x509.CertPool
	// VerifyOffline unticks "check revocation online" in the verify window.
	VerifyOffline bool
	// OnEvent, if set, is called (on the UI goroutine) for every Event.
	OnEvent func(Event)
	// Standalone makes closing the last window quit the app (no tray).
	Standalone bool
}

// UI is the desktop app: the tray, its windows and dialogs. Its methods
// must be called on the fyne UI goroutine, except SetStatus, which any
// goroutine may call.
type UI struct {
	app fyne.App
	cfg Config
	log *slog.Logger
	do  func(func()) // runs a function on the UI goroutine

	mu         sync.Mutex // guards cat, status, statusSeen, holders
	cat        *Catalogue
	status     Status
	statusSeen bool
	holders    map[string]string // PAN → holder name learned in this session

	desk  desktop.App // nil without a system tray
	shown struct {    // what the tray shows now (UI goroutine only)
		valid         bool
		icon          icon.Kind
		menu, tooltip string
	}
	monitor *Monitor
	windows map[string]*openWindow
	tasks   sync.WaitGroup // background operations
	active  atomic.Int32   // background operations running
}

// view is the content of one window.
type view interface {
	// title returns the window title in the current language.
	title() string
	// build makes the widgets (again after a language change).
	build() fyne.CanvasObject
	// focus returns the widget that has the keyboard focus when the
	// window opens, or nil.
	focus() fyne.Focusable
	// minSize is the window's size when it opens.
	minSize() fyne.Size
	// closed is called when the window closes: stop what it runs.
	closed()
}

type openWindow struct {
	win fyne.Window
	v   view
}

// New returns the app's UI on a (the fyne app, or fyne's test app).
func New(a fyne.App, cfg Config) *UI {
	u := &UI{
		app:     a,
		cfg:     cfg,
		do:      fyne.Do,
		cat:     NewCatalogue(cfg.Settings.Language),
		holders: map[string]string{},
		windows: map[string]*openWindow{},
		status:  Status{Presence: NoReader},
	}
	u.log = slog.New(slog.DiscardHandler)
	if cfg.Log != nil {
		cfg.Log.SetLevel(cfg.Settings.LogLevel)
		u.log = cfg.Log.Logger()
	}
	if u.cfg.Open == nil {
		u.cfg.Open = func(ctx context.Context, reader string) (*cardsession.Session, error) {
			return cardsession.Open(ctx, reader, u.log)
		}
	}
	if u.cfg.Diagnose == nil {
		u.cfg.Diagnose = func(ctx context.Context) Diagnostics {
			return GatherDiagnostics(ctx, u.cfg.Reader, u.cfg.Open, u.cfg.Version)
		}
	}
	a.SetIcon(appIcon)
	addFyneItalian()
	return u
}

// Catalogue returns the messages in the current language.
func (u *UI) Catalogue() *Catalogue {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cat
}

// T is u.Catalogue().T.
func (u *UI) T(id string, data ...map[string]any) string { return u.Catalogue().T(id, data...) }

// N is u.Catalogue().N.
func (u *UI) N(id string, n int, data ...map[string]any) string {
	return u.Catalogue().N(id, n, data...)
}

func (u *UI) event(e Event) {
	if u.cfg.OnEvent != nil {
		u.cfg.OnEvent(e)
	}
}

// goTask runs f in a background goroutine counted by u.tasks.
func (u *UI) goTask(f func()) {
	u.tasks.Add(1)
	u.active.Add(1)
	go func() {
		defer u.tasks.Done()
		defer u.active.Add(-1)
		f()
	}()
}

// Open shows the window name (one of WindowNames), or brings it to the
// front when it is already open.
func (u *UI) Open(name string) error {
	if ow := u.windows[name]; ow != nil {
		ow.win.Show()
		ow.win.RequestFocus()
		return nil
	}
	v := u.newView(name)
	if v == nil {
		return fmt.Errorf("tray: unknown window %q (known: %v)", name, WindowNames())
	}
	w := u.app.NewWindow(v.title())
	w.SetIcon(appIcon)
	ow := &openWindow{win: w, v: v}
	u.windows[name] = ow
	w.SetContent(v.build())
	fitWindow(w, v.minSize())
	w.SetOnClosed(func() {
		v.closed()
		if u.windows[name] == ow {
			delete(u.windows, name)
		}
		u.event(Event{Kind: "closed", Window: name})
		if u.cfg.Standalone && len(u.windows) == 0 {
			u.app.Quit()
		}
	})
	w.Canvas().SetOnTypedKey(func(ev *fyne.KeyEvent) {
		if ev.Name == fyne.KeyEscape {
			w.Close()
		}
	})
	if d, ok := v.(interface{ dropped([]fyne.URI) }); ok {
		w.SetOnDropped(func(_ fyne.Position, uris []fyne.URI) { d.dropped(uris) })
	}
	w.CenterOnScreen()
	w.Show()
	if f := v.focus(); f != nil {
		w.Canvas().Focus(f)
	}
	u.event(Event{Kind: "window", Window: name, Title: v.title()})
	return nil
}

func (u *UI) newView(name string) view {
	switch name {
	case WinStatus:
		return newStatusView(u)
	case WinChangePIN:
		return newChangePINView(u)
	case WinUnblockPIN:
		return newUnblockView(u)
	case WinDiagnostics:
		return newDiagnosticsView(u)
	case WinBrowsers:
		return newBrowsersView(u)
	case WinSettings:
		return newSettingsView(u)
	case WinAbout:
		return newAboutView(u)
	case WinSign:
		return newSignView(u)
	case WinVerify:
		return newVerifyView(u)
	}
	return nil
}

// window returns the fyne window of an open view, or nil.
func (u *UI) window(name string) fyne.Window {
	if ow := u.windows[name]; ow != nil {
		return ow.win
	}
	return nil
}

// closeWindow closes the named window if it is open.
func (u *UI) closeWindow(name string) {
	if w := u.window(name); w != nil {
		w.Close()
	}
}

// SetLanguage switches the catalogue ("it", "en", or "" for the system's)
// and redraws the tray menu and every open window.
func (u *UI) SetLanguage(lang string) {
	u.mu.Lock()
	u.cfg.Settings.Language = lang
	u.cat = NewCatalogue(lang)
	u.mu.Unlock()
	for _, name := range slices.Sorted(mapKeys(u.windows)) {
		ow := u.windows[name]
		ow.win.SetTitle(ow.v.title())
		ow.win.SetContent(ow.v.build())
		if f := ow.v.focus(); f != nil {
			ow.win.Canvas().Focus(f)
		}
	}
	u.applyTray()
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// settings returns a copy of the current settings.
func (u *UI) settings() Settings {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cfg.Settings
}

// saveSettings stores s (language and log level) and applies the log level.
func (u *UI) saveSettings(s Settings) error {
	u.mu.Lock()
	u.cfg.Settings = s
	u.mu.Unlock()
	if u.cfg.Log != nil {
		u.cfg.Log.SetLevel(s.LogLevel)
	}
	if u.cfg.SettingsPath == "" {
		return nil
	}
	return s.Save(u.cfg.SettingsPath)
}

// StartTray shows the system tray icon and menu and starts watching the
// readers with a Monitor. It reports false, doing nothing, when the
// driver has no system tray (fyne's test driver).
func (u *UI) StartTray(ctx context.Context) bool {
	d, ok := u.app.(desktop.App)
	if !ok {
		return false
	}
	u.desk = d
	u.applyTray()
	systray.SetTitle(u.T("app.name"))
	u.monitor = NewMonitor(u.cfg.Reader, ProbeWith(u.cfg.Open, u.cfg.CertCache, u.log), u.log)
	go u.monitor.Run(ctx, u.SetStatus)
	// Opening the menu reads the card again, so that it shows the PIN
	// state even after another program (a browser) spent a try.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-systray.TrayOpenedCh:
				u.refreshStatus()
			}
		}
	}()
	return true
}

// Status returns the status the tray shows.
func (u *UI) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

// SetStatus shows a new status in the tray and sends the notifications for
// the change. Any goroutine may call it.
func (u *UI) SetStatus(st Status) {
	u.mu.Lock()
	if st.Holder == "" && st.PAN != "" {
		st.Holder = u.holders[st.PAN]
	}
	prev, seen := u.status, u.statusSeen
	if seen && reflect.DeepEqual(prev, st) {
		u.mu.Unlock()
		return // nothing new: the monitor also wakes for other readers
	}
	u.status, u.statusSeen = st, true
	cat := u.cat
	u.mu.Unlock()
	var notes []Notice
	if seen {
		notes = Notices(prev, st, cat)
	}
	u.do(func() {
		u.applyTray()
		u.event(Event{Kind: "status", Title: st.Presence.String(), Message: st.Tooltip(cat)})
		for _, n := range notes {
			u.app.SendNotification(fyne.NewNotification(n.Title, n.Body))
			u.event(Event{Kind: "notice", Title: n.Title, Message: n.Body})
		}
	})
}

// learnHolder remembers the holder of a card whose certificate was read
// after a PIN verification in this session.
func (u *UI) learnHolder(pan, holder string) {
	if pan == "" || holder == "" {
		return
	}
	u.mu.Lock()
	u.holders[pan] = holder
	u.mu.Unlock()
}

// applyTray sets the tray icon, tooltip and menu from the status, each
// only when it changed (a new menu gets new item ids, which would race
// with a panel showing the old one).
func (u *UI) applyTray() {
	if u.desk == nil {
		return
	}
	st, cat := u.Status(), u.Catalogue()
	if k := st.Icon(); !u.shown.valid || u.shown.icon != k {
		u.desk.SetSystemTrayIcon(trayIcons[k])
		u.shown.icon = k
	}
	if m := cat.Lang() + "\x00" + st.Summary(cat); !u.shown.valid || u.shown.menu != m {
		u.desk.SetSystemTrayMenu(u.trayMenu())
		u.shown.menu = m
	}
	if tip := st.Tooltip(cat); !u.shown.valid || u.shown.tooltip != tip {
		systray.SetTooltip(tip)
		u.shown.tooltip = tip
	}
	u.shown.valid = true
}

// trayMenu builds the tray menu in the current language.
func (u *UI) trayMenu() *fyne.Menu {
	st := u.Status()
	open := func(name string) func() {
		return func() {
			if err := u.Open(name); err != nil {
				u.log.Error("opening a window", "err", err)
			}
		}
	}
	summary := fyne.NewMenuItem(st.Summary(u.Catalogue()), nil)
	summary.Disabled = true
	quit := fyne.NewMenuItem(u.T("menu.quit"), u.app.Quit)
	quit.IsQuit = true
	return fyne.NewMenu(u.T("app.name"),
		summary,
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem(u.T("menu.status"), open(WinStatus)),
		fyne.NewMenuItem(u.T("menu.change_pin"), open(WinChangePIN)),
		fyne.NewMenuItem(u.T("menu.unblock_pin"), open(WinUnblockPIN)),
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem(u.T("menu.sign"), open(WinSign)),
		fyne.NewMenuItem(u.T("menu.verify"), open(WinVerify)),
		fyne.NewMenuItemSeparator(),
		u.browsersMenu(open(WinBrowsers)),
		fyne.NewMenuItem(u.T("menu.diagnostics"), open(WinDiagnostics)),
		fyne.NewMenuItem(u.T("menu.settings"), open(WinSettings)),
		fyne.NewMenuItem(u.T("menu.about"), open(WinAbout)),
		fyne.NewMenuItemSeparator(),
		quit,
	)
}

// browsersMenu is the Browsers submenu: register the module in every
// browser, remove it, show the browsers window.
func (u *UI) browsersMenu(show func()) *fyne.MenuItem {
	m := fyne.NewMenuItem(u.T("menu.browsers"), nil)
	m.ChildMenu = fyne.NewMenu(u.T("menu.browsers"),
		fyne.NewMenuItem(u.T("menu.browsers_register"), func() { u.browsersAction(browsersRegister) }),
		fyne.NewMenuItem(u.T("menu.browsers_unregister"), func() { u.browsersAction(browsersUnregister) }),
		fyne.NewMenuItem(u.T("menu.browsers_show"), show),
	)
	return m
}

// refreshStatus asks the monitor to read the card again (no monitor: no-op).
func (u *UI) refreshStatus() {
	if u.monitor != nil {
		u.monitor.Refresh()
	}
}

// cardReader returns the reader operations use: the one the tray shows a
// card on, else the configured one (or "" for the first with a card).
func (u *UI) cardReader() string {
	if st := u.Status(); st.hasCard() && st.Reader != "" {
		return st.Reader
	}
	return u.cfg.Reader
}

// withCard opens the card, holds it (one PC/SC transaction), runs fn, updates the tray status from the
// card's PIN state (read in the same session, without spending a try)
// and closes the card.
func (u *UI) withCard(ctx context.Context, fn func(ctx context.Context, c *cie.Card) error) error {
	s, err := u.cfg.Open(ctx, u.cardReader())
	if err != nil {
		u.noteTrouble(err)
		return err
	}
	defer s.Close()
	// The card is held for the whole operation, so that a browser's module
	// cannot end the secure messaging between the PIN check and the use of
	// the PIN (the CLI does the same).
	if err := s.Hold(ctx); err != nil {
		return err
	}
	err = fn(ctx, s.Card)
	if ctx.Err() == nil {
		st := readStatus(ctx, Status{Presence: CIEPresent, Reader: s.Reader}, s, nil, u.log)
		if st.Presence == CIEPresent {
			if cur := u.Status(); cur.PAN == st.PAN {
				st.Holder = cur.Holder
			}
			u.SetStatus(st)
		}
	}
	return err
}

// noteTrouble updates the tray after an operation could not open the card.
func (u *UI) noteTrouble(err error) {
	p, _ := cardsession.Classify(err)
	switch p {
	case cardsession.ProblemNoService, cardsession.ProblemNoReader, cardsession.ProblemNoCard,
		cardsession.ProblemUnsupported:
		u.SetStatus(troubled(Status{Reader: u.cardReader()}, err, nil))
	}
}

// operationTimeout bounds every card operation started from a window.
const operationTimeout = 2 * time.Minute

// trayIcons are the tray pictures, PNG as every tray needs.
var trayIcons = func() map[icon.Kind]fyne.Resource {
	m := map[icon.Kind]fyne.Resource{}
	for _, k := range icon.Kinds() {
		m[k] = fyne.NewStaticResource("cie-"+k.String()+".png", icon.PNG(k, 64))
	}
	return m
}()

// appIcon is the application icon of the windows.
var appIcon = fyne.NewStaticResource("cie-desktop.png", icon.PNG(icon.App, 256))

// fitWindow sizes w to size.Width and the height its content needs at
// that width (at least size.Height): laid out once at the width, wrapped
// text knows its line count.
func fitWindow(w fyne.Window, size fyne.Size) {
	c := w.Content()
	c.Resize(fyne.NewSize(size.Width, c.MinSize().Height))
	w.Resize(fyne.NewSize(size.Width, max(size.Height, c.MinSize().Height)))
}
