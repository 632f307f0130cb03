package tray

import (
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/lang"
	"github.com/jeandeaual/go-locale"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// The message catalogues, one JSON file per language in go-i18n's format:
// "id": "text" or "id": {"one": "…", "other": "…"} for plurals. Templates
// use {{.Name}} placeholders.
//
//go:embed locales/*.json
var localeFS embed.FS

// fyne's own strings (file dialogs, OK/Cancel of its dialogs) in Italian,
// which fyne 2.7 lacks. fyne picks them by the system locale only.
//
//go:embed fynelang/it.json
var fyneItalian []byte

var fyneOnce sync.Once

// addFyneItalian gives fyne's own dialogs their Italian strings.
func addFyneItalian() {
	fyneOnce.Do(func() {
		if err := lang.AddTranslationsForLocale(fyneItalian, fyne.Locale("it")); err != nil {
			panic(fmt.Sprintf("tray: loading fyne's Italian strings: %v", err))
		}
	})
}

// Languages are the languages with a catalogue, English first (the
// fallback).
var Languages = []string{"en", "it"}

var (
	bundleOnce sync.Once
	bundle     *i18n.Bundle
	bundleErr  error
)

func loadBundle() (*i18n.Bundle, error) {
	bundleOnce.Do(func() {
		bundle = i18n.NewBundle(language.English)
		bundle.RegisterUnmarshalFunc("json", json.Unmarshal)
		for _, l := range Languages {
			if _, err := bundle.LoadMessageFileFS(localeFS, "locales/"+l+".json"); err != nil {
				bundleErr = fmt.Errorf("loading the %s catalogue: %w", l, err)
				return
			}
		}
	})
	return bundle, bundleErr
}

// SystemLanguage returns the catalogue language that best fits the user's
// locale (LANGUAGE, LC_ALL, LC_MESSAGES, LANG on Unix; the system setting on
// Windows and macOS): "it" for any Italian locale, else "en".
func SystemLanguage() string {
	locales, err := locale.GetLocales()
	if err != nil {
		return "en"
	}
	return bestLanguage(locales)
}

// bestLanguage picks the first locale with a catalogue, "en" when none has.
func bestLanguage(locales []string) string {
	for _, l := range locales {
		base, _, _ := strings.Cut(strings.ReplaceAll(strings.ToLower(l), "_", "-"), "-")
		base, _, _ = strings.Cut(base, ".")
		for _, have := range Languages {
			if base == have {
				return have
			}
		}
	}
	return "en"
}

// Catalogue gives the messages of one language. Its methods are safe for
// concurrent use.
type Catalogue struct {
	lang string
	loc  *i18n.Localizer
}

// NewCatalogue returns the catalogue for lang ("it" or "en"); any other
// value, the empty string included, means SystemLanguage().
func NewCatalogue(lang string) *Catalogue {
	if !isLanguage(lang) {
		lang = SystemLanguage()
	}
	b, err := loadBundle()
	if err != nil {
		// The catalogues are embedded and checked by the tests: a failure
		// here is a build defect, not a user condition.
		panic(fmt.Sprintf("tray: %v", err))
	}
	return &Catalogue{lang: lang, loc: i18n.NewLocalizer(b, lang)}
}

func isLanguage(lang string) bool {
	for _, l := range Languages {
		if l == lang {
			return true
		}
	}
	return false
}

// Lang returns the catalogue's language, "it" or "en".
func (c *Catalogue) Lang() string { return c.lang }

// T returns the message id filled with data (a map of placeholder names to
// values), or id itself when no catalogue has it.
func (c *Catalogue) T(id string, data ...map[string]any) string {
	cfg := &i18n.LocalizeConfig{MessageID: id}
	if len(data) > 0 {
		cfg.TemplateData = data[0]
	}
	s, err := c.loc.Localize(cfg)
	if err != nil {
		return id
	}
	return s
}

// N returns the plural message id for count n; the template sees n as
// {{.Count}} besides data.
func (c *Catalogue) N(id string, n int, data ...map[string]any) string {
	td := map[string]any{"Count": n}
	if len(data) > 0 {
		for k, v := range data[0] {
			td[k] = v
		}
	}
	s, err := c.loc.Localize(&i18n.LocalizeConfig{MessageID: id, PluralCount: n, TemplateData: td})
	if err != nil {
		return id
	}
	return s
}
