package dev.maestro.intellij

import com.intellij.openapi.application.ApplicationManager
import com.intellij.openapi.components.PersistentStateComponent
import com.intellij.openapi.components.State
import com.intellij.openapi.components.Storage

/** Application-level settings: how to launch `maestro lsp` and its initialization options. */
@State(name = "MaestroSettings", storages = [Storage("maestro.xml")])
class MaestroSettings : PersistentStateComponent<MaestroSettings.Options> {
    data class Options(
        /** The `maestro` executable; empty: [interpreter] `-P -m maestro.server`, else `maestro` on PATH. */
        var path: String = "",
        /** Python that runs the tests (sent as `interpreter`). */
        var interpreter: String = "",
        /** "workspace" (`ml.speculation.enabled` decides), "on" or "off". */
        var speculation: String = "workspace",
        /** Coordinator the workspace daemon syncs with, over `[tool.maestro.remote] url`. */
        var coordinatorUrl: String = "",
        var daemonAutostart: Boolean = true,
        var codeLens: Boolean = true,
        /** After a save, run the tests the saved file impacts (off by default). */
        var runOnSave: Boolean = false,
    )

    private var options = Options()

    override fun getState(): Options = options

    override fun loadState(state: Options) {
        options = state
    }

    /** The server command line (docs/lsp.md "Launching"). */
    fun command(): List<String> {
        val exe = options.path.trim()
        val py = options.interpreter.trim()
        return when {
            exe.isNotEmpty() -> listOf(exe, "lsp")
            py.isNotEmpty() -> listOf(py, "-P", "-m", "maestro.server")
            else -> listOf("maestro", "lsp")
        }
    }

    /** `initializationOptions` (docs/lsp.md "Initialization options"). */
    fun initializationOptions(): Map<String, Any?> = mapOf(
        "interpreter" to options.interpreter.trim().ifEmpty { null },
        "speculation" to when (options.speculation) {
            "on" -> true
            "off" -> false
            else -> null
        },
        "coordinatorUrl" to options.coordinatorUrl.trim().ifEmpty { null },
        "daemonAutostart" to options.daemonAutostart,
        "codeLens" to mapOf("enabled" to options.codeLens, "impactedOnSource" to options.codeLens),
        "diagnostics" to true,
        "runOnSave" to options.runOnSave,
    )

    companion object {
        fun getInstance(): MaestroSettings =
            ApplicationManager.getApplication().getService(MaestroSettings::class.java)
    }
}
