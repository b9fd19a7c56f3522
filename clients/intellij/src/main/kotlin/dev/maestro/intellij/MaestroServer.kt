package dev.maestro.intellij

import com.intellij.notification.NotificationGroupManager
import com.intellij.notification.NotificationType
import com.intellij.openapi.project.Project
import com.redhat.devtools.lsp4ij.LanguageServerManager
import org.eclipse.lsp4j.ExecuteCommandParams
import java.util.concurrent.CompletableFuture

/** Access to the running Maestro server of a project (started on demand by LSP4IJ). */
object MaestroServer {
    const val ID = "maestro"

    fun api(project: Project): CompletableFuture<MaestroLanguageServerApi?> =
        LanguageServerManager.getInstance(project).getLanguageServer(ID)
            .thenCompose { item -> item?.initializedServer ?: CompletableFuture.completedFuture(null) }
            .thenApply { it as? MaestroLanguageServerApi }

    /** `workspace/executeCommand` with one of the server's `maestro.*` commands. */
    fun execute(project: Project, command: String, vararg args: Any): CompletableFuture<Any?> =
        api(project).thenCompose { server ->
            server?.workspaceService?.executeCommand(ExecuteCommandParams(command, args.toList()))
                ?: CompletableFuture.failedFuture(IllegalStateException("the Maestro language server is not running"))
        }

    fun notify(project: Project, text: String, warning: Boolean = false) {
        NotificationGroupManager.getInstance().getNotificationGroup("Maestro")
            .createNotification(text, if (warning) NotificationType.WARNING else NotificationType.INFORMATION)
            .notify(project)
    }
}
