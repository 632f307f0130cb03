// Package tray owns the CIE Desktop app (the cie-tray command): the system
// tray icon with its menu and notifications, and the windows a citizen
// uses — card status, change PIN, unblock PIN, sign a file, verify a
// signature, the browsers (the PKCS#11 module registered in Firefox and
// Chromium through package internal/browser, as `cie browser` does),
// diagnostics with the support bundle, settings, about — plus
// the PIN dialog behind `cie-tray pinentry` (PINPrompter, on the Assuan
// server of package tray/pinentry).
//
// It holds no protocol or cryptographic code: the windows call the same
// APIs as the cie command — package cie for the card (opened through
// internal/cardsession), package sign for CAdES and PAdES — and show the
// outcome in words a citizen understands (the Problem of
// cardsession.Classify), never only on standard error. The PIN rules of
// cie-protocol.md §7 are checked with cie.ValidatePIN and
// cie.ValidateNewPIN before the card is touched.
//
// The GUI is fyne's (v2.7), its tray fyne's own (fyne.io/systray, pure Go
// over D-Bus on Linux), with PNG icons from package tray/icon. Every
// string is in the message catalogues locales/en.json and locales/it.json
// (go-i18n): the language follows the system locale and can be changed in
// the settings, which redraws the open windows and the tray menu.
//
// Threading: UI methods run on fyne's UI goroutine; card operations run
// in background goroutines (a progress bar and a Stop button show them)
// and hand their results back with fyne.Do. A Monitor watches the readers
// with its own PC/SC context and reports a Status, which sets the tray's
// icon (no reader, no card, CIE present, PIN blocked), tooltip (with the
// holder's name when known) and menu, and triggers the notifications.
package tray
