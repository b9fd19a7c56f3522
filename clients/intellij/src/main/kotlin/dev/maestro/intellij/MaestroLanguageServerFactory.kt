package dev.maestro.intellij

import com.intellij.openapi.project.Project
import com.redhat.devtools.lsp4ij.LanguageServerFactory
import com.redhat.devtools.lsp4ij.client.LanguageClientImpl
import com.redhat.devtools.lsp4ij.server.StreamConnectionProvider
import org.eclipse.lsp4j.services.LanguageServer

/** Registered in plugin.xml (`com.redhat.devtools.lsp4ij.server`, id "maestro"). */
class MaestroLanguageServerFactory : LanguageServerFactory {
    override fun createConnectionProvider(project: Project): StreamConnectionProvider =
        MaestroConnectionProvider(project)

    override fun createLanguageClient(project: Project): LanguageClientImpl =
        MaestroLanguageClient(project)

    override fun getServerInterface(): Class<out LanguageServer> = MaestroLanguageServerApi::class.java
}
