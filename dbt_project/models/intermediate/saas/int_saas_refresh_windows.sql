{#- Per workspace, the first day the SaaS daily tables rebuild (macro refresh_windows). -#}
{{ refresh_windows('saas') }}
