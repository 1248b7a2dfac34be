using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Pare.Server;

/// <summary>With an API key set, every /v1 request needs <c>Authorization: Bearer KEY</c>; /health stays public.</summary>
internal static class ApiKeyAuth
{
    public static bool IsAuthorized(HttpRequest request, string key)
    {
        string? header = request.Headers.Authorization;
        const string prefix = "Bearer ";
        if (header == null || !header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return false;
        return KeyEquals(header[prefix.Length..].Trim(), key);
    }

    /// <summary>Constant-time comparison: compares SHA-256 digests, so neither content nor length leaks through timing.</summary>
    public static bool KeyEquals(string given, string key) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
