package dev.maestro.intellij

import org.eclipse.lsp4j.services.LanguageServer

/** The server's custom requests (generated in Protocol.kt from server/methods.py), next to the
 * standard LSP ones. */
interface MaestroLanguageServerApi : LanguageServer, MaestroRequests
