/* Test-only stand-in for Windows' bcryptprimitives.dll, which wine 8 lacks.
 *
 * Rust's standard library (1.78+) takes its randomness from ProcessPrng in
 * bcryptprimitives.dll, present on every Windows 10 and later. Wine 8.0 (Debian 12) has no
 * such DLL, so an .exe built by Rust exits before main. This one export, filled from
 * RtlGenRandom (advapi32's SystemFunction036), lets the real binary run under wine in
 * tests/windows.rs. It is never shipped. Built by scripts/build-windows.sh. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x80000000u ? 0x80000000u : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
