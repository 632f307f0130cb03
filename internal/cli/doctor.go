package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/browser"
	"github.com/ciedesktop/cie-desktop/internal/doctor"
	"github.com/ciedesktop/cie-desktop/internal/rotlog"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// maxBundleLog bounds each log file in a bundle (its last bytes).
const maxBundleLog = 1 << 20

// doctor runs `cie doctor`: the checks of package internal/doctor, printed
// one per line; exit 1 when one fails.
func (a *app) doctor(ctx context.Context, args []string) error {
	var bundle string
	var probe bool
	if err := a.subFlags("doctor", args, func(fs *flag.FlagSet) {
		fs.StringVar(&bundle, "bundle", "", "")
		fs.BoolVar(&probe, "probe-card", false, "")
	}); err != nil {
		return err
	}
	checks := []doctor.Check{{Name: "versions", Status: doctor.Info,
		Detail: fmt.Sprintf("cie %s, %s, %s/%s", a.env.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)}}
	checks = append(checks, a.doctorReaders(ctx, probe)...)
	if runtime.GOOS == "linux" {
		if mods, err := os.ReadFile("/proc/modules"); err != nil {
			checks = append(checks, doctor.Check{Name: "NFC kernel drivers", Status: doctor.Info, Detail: "cannot tell: " + err.Error()})
		} else {
			if d := doctor.LoadedNFCDrivers(string(mods)); len(d) > 0 {
				checks = append(checks, doctor.Check{Name: "NFC kernel drivers", Status: doctor.Warn,
					Detail: "loaded: " + strings.Join(d, ", ") + " — they take USB NFC readers (ACR122U, PN533) away from pcscd",
					Fix:    "sudo modprobe -r " + strings.Join(d, " ") + "; to keep them off: echo 'blacklist pn533_usb' | sudo tee /etc/modprobe.d/cie-nfc.conf"})
			} else {
				checks = append(checks, doctor.Check{Name: "NFC kernel drivers", Status: doctor.OK, Detail: "none loaded"})
			}
		}
		checks = append(checks, a.doctorBrowsers()...)
	}
	home, _ := os.UserHomeDir()
	checks = append(checks, doctor.SandboxedBrowsers("/", home)...)
	checks = append(checks, logChecks()...)

	report := doctor.Format(checks)
	fmt.Fprint(a.env.Stdout, report)
	if bundle != "" {
		var logs []string
		if l := os.Getenv("CIE_PKCS11_LOG"); l != "" {
			if files := rotlog.Files(l); len(files) > 0 {
				logs = append(logs, files...)
			} else {
				logs = append(logs, l) // noted as missing in report.txt
			}
		}
		if l, err := trayLogPath(); err == nil {
			logs = append(logs, rotlog.Files(l)...) // the tray logs only when asked to
		}
		f, err := os.OpenFile(bundle, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("creating the bundle: %w", err)
		}
		werr := doctor.WriteBundle(f, report, logs, maxBundleLog, time.Now())
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("writing the bundle: %w", werr)
		}
		fmt.Fprintf(a.env.Stdout, "Diagnostics written to %s (PINs removed, card numbers and codici fiscali masked).\n", bundle)
	}
	if doctor.Worst(checks) == doctor.Fail {
		return errors.New("doctor: some checks failed")
	}
	return nil
}

// doctorReaders checks pcscd, the readers and the cards on them.
func (a *app) doctorReaders(ctx context.Context, probe bool) []doctor.Check {
	pc, err := pcsc.Establish()
	if err != nil {
		return []doctor.Check{{Name: "pcscd", Status: doctor.Fail, Detail: err.Error(),
			Fix: "install and start it: sudo apt install pcscd && sudo systemctl enable --now pcscd.socket"}}
	}
	defer pc.Release()
	checks := []doctor.Check{{Name: "pcscd", Status: doctor.OK, Detail: "reachable"}}
	names, err := pc.Readers()
	if err != nil || len(names) == 0 {
		detail := "no reader"
		if err != nil && !errors.Is(err, pcsc.ErrNoReaders) {
			detail = err.Error()
		}
		return append(checks, doctor.Check{Name: "readers", Status: doctor.Fail, Detail: detail,
			Fix: "plug in a reader; an NFC reader may be taken by a kernel driver (see below)"})
	}
	for _, name := range names {
		r := doctor.Reader{Name: name}
		kind := "contact"
		if r.Contactless() {
			kind = "contactless"
		}
		c := doctor.Check{Name: "reader " + name, Status: doctor.OK}
		st, err := pc.Status(ctx, name)
		switch {
		case err != nil:
			c.Status, c.Detail = doctor.Warn, kind+", "+err.Error()
		case !st.Present:
			c.Status, c.Detail = doctor.Info, kind+", no card"
		case st.Mute:
			c.Status, c.Detail, c.Fix = doctor.Warn, kind+", a card that does not answer", "reinsert the card (chip side, the right way up) or hold it still on the reader"
		default:
			if f, ok := cie.FamilyByATR(st.ATR); ok {
				c.Detail = fmt.Sprintf("%s, CIE (%s), ATR %X", kind, f.Name, st.ATR)
			} else {
				c.Status, c.Detail = doctor.Warn, fmt.Sprintf("%s, a card that is not a known CIE, ATR %X", kind, st.ATR)
			}
		}
		checks = append(checks, c)
		checks = append(checks, doctor.ExtendedCheck(name, a.extendedLength(ctx, pc, name, st, err == nil, probe)))
	}
	return checks
}

// extendedLength finds out whether the reader carries extended-length
// APDUs: from the driver's PC/SC part 10 properties when it reports them
// (libccid does, from the CCID descriptor), else, with probe (--probe-card),
// by an extended READ BINARY of a public file of a CIE in the reader, else
// unknown. The probe selects the CIE application, which ends the secure
// messaging session of any other program: a browser logged in with the
// card has to log in again. So it is asked for, never done by default.
func (a *app) extendedLength(ctx context.Context, pc *pcsc.Context, reader string, st pcsc.ReaderStatus, stOK, probe bool) doctor.ExtendedLength {
	props, perr := pc.ReaderProperties(ctx, reader)
	if perr == nil {
		if v, ok := props[pcsc.PropMaxAPDUDataSize]; ok {
			if max, ok := pcsc.PropertyUint(v); ok {
				return doctor.ExtendedFromMaxAPDU(max)
			}
		}
		perr = errors.New("the reader driver's properties lack dwMaxAPDUDataSize")
	}
	why := "the reader driver does not tell"
	if !errors.Is(perr, pcsc.ErrNoProperties) {
		why += " (" + perr.Error() + ")"
	}
	if !stOK || !st.Present || st.Mute {
		return doctor.ExtendedLength{Support: doctor.Unknown, How: why + ", and there is no card to test it with"}
	}
	if _, ok := cie.FamilyByATR(st.ATR); !ok {
		return doctor.ExtendedLength{Support: doctor.Unknown, How: why + ", and the card is not a known CIE to test it with"}
	}
	if !probe {
		return doctor.ExtendedLength{Support: doctor.Unknown,
			How: why + "; `cie doctor --probe-card` asks the CIE (a browser logged in with it will ask for the PIN again)"}
	}
	card, err := pc.Connect(ctx, reader)
	if err != nil {
		return doctor.ExtendedLength{Support: doctor.Unknown, How: why + ", and connecting to the card failed: " + err.Error()}
	}
	defer card.Close()
	e := doctor.ProbeExtended(ctx, card)
	if e.Support == doctor.Unknown {
		e.How = why + "; " + e.How
	}
	return e
}

// trayLogPath is where cie-tray writes its log when logging is on
// (tray.DefaultLogPath; package tray is not imported, to keep the GUI
// toolkit out of the command line tool).
func trayLogPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "cie-desktop", "logs", "cie-tray.log"), nil
}

// logChecks reports whether the module and the tray log, where, and the
// bounds of the module's log.
func logChecks() []doctor.Check {
	c := doctor.Check{Name: "PKCS#11 module log", Status: doctor.Info,
		Detail: "off (set CIE_PKCS11_LOG=/path/to/file in the browser's environment to turn it on)"}
	if l := os.Getenv("CIE_PKCS11_LOG"); l != "" {
		opts, err := rotlog.FromEnv("CIE_PKCS11_LOG", os.Getenv)
		max, keep := opts.Effective()
		c.Detail = fmt.Sprintf("on in this environment: %s, rotated at %d KiB, %d old files kept", l, max>>10, keep)
		if err != nil {
			c.Status, c.Detail = doctor.Warn, c.Detail+"; "+err.Error()
		}
	}
	checks := []doctor.Check{c}
	if l, err := trayLogPath(); err == nil {
		if files := rotlog.Files(l); len(files) > 0 {
			checks = append(checks, doctor.Check{Name: "tray log", Status: doctor.Info, Detail: strings.Join(files, ", ")})
		}
	}
	return checks
}

// doctorBrowsers reports the module's registration in every Firefox
// profile, Chromium NSS database and the Firefox system policy.
func (a *app) doctorBrowsers() []doctor.Check {
	exe, _ := os.Executable()
	module, ferr := browser.FindModule(exe)
	checks := []doctor.Check{{Name: "PKCS#11 module", Status: doctor.OK, Detail: module}}
	if ferr != nil {
		checks[0] = doctor.Check{Name: "PKCS#11 module", Status: doctor.Fail, Detail: ferr.Error(), Fix: "reinstall CIE Desktop"}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return checks
	}
	reports, _ := browser.Status(browser.Config{Home: home, Module: module, PolicyFiles: browser.DefaultPolicyFiles})
	for _, r := range reports {
		c := doctor.Check{Name: r.Name, Status: doctor.OK, Detail: r.State.String()}
		if r.Kind == browser.FirefoxProfile {
			c.Name = "Firefox profile " + r.Name
		} else if r.Kind == browser.ChromiumDB {
			c.Name = "Chromium NSS DB " + r.Name
		} else if r.Kind == browser.FirefoxPolicy {
			c.Name = "Firefox policy " + r.Path
		}
		switch {
		case r.Err != nil:
			c.Status, c.Detail = doctor.Warn, r.Err.Error()
		case r.State == browser.NotRegistered || r.State == browser.Stale:
			c.Status, c.Fix = doctor.Warn, "cie browser register"
			if r.Kind == browser.FirefoxPolicy {
				c.Fix = "sudo cie browser register --system"
			}
		case r.State == browser.Absent:
			c.Status = doctor.Info
		}
		checks = append(checks, c)
	}
	if len(reports) == 0 {
		checks = append(checks, doctor.Check{Name: "browsers", Status: doctor.Info, Detail: "no Firefox profile or Chromium NSS database found"})
	}
	return checks
}
